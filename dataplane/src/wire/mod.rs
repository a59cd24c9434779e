//! Zero-copy header views and emitters, in the style of smoltcp's `wire`:
//! a `Packet<T: AsRef<[u8]>>` view whose accessors never panic and never
//! read past the buffer, a `Repr` with `parse`/`emit`, unknown values kept
//! as `Unknown(n)`.

pub mod checksum;
pub mod erspan;
pub mod ethernet;
pub mod geneve;
pub mod gre;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod mpls;
pub mod tcp;
pub mod udp;
pub mod vlan;
pub mod vxlan;
