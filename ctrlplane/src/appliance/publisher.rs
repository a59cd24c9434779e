//! The policy publisher: loads and compiles a policy, gives each
//! destination a counter slot and a sequence-number word that stay with
//! its name across swaps, builds the workers' tables with the next hops'
//! tunnel templates, and publishes them by pointer swap.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};

use ahash::AHashMap;
use arc_swap::ArcSwap;
use dataplane::dpdk::Port;
use dataplane::runtime::counters::MAX_DEST_SLOTS;
use dataplane::runtime::policy::{CompiledPolicy, Destination, TunnelOut};
use dataplane::runtime::snapshot::DestSlot;
use dataplane::runtime::tables::{DestTable, Tables};
use dataplane::stage::encap::{EncapConfig, EncapTemplate, OuterConfig};
use dataplane::wire::ethernet::Address;

use super::error::StartError;
use super::tools::Tools;
use crate::config::{Config, PortConfig};
use crate::log::log;
use crate::neighbor::{Neighbors, Uplink};
use crate::policy::{self, Context, Policy, PolicyError};

/// Where the policy comes from.
#[derive(Debug, Clone)]
pub enum PolicySource {
    File(PathBuf),
    /// Text built into the program (the default run).
    BuiltIn(&'static str),
    /// Text from the controller, or persisted from it; `origin` names it.
    Text {
        origin: String,
        text: String,
    },
}

impl PolicySource {
    /// Loads and compiles the policy, its classifier's flow-cache misses on
    /// rte_acl when it can (on the main lcore, before any worker sees it;
    /// see `CompiledPolicy::choose_miss_path`).
    fn load(&self, ctx: &Context) -> Result<(Policy, CompiledPolicy), PolicyError> {
        let (model, mut compiled) = match self {
            PolicySource::File(p) => policy::load(p, ctx),
            PolicySource::BuiltIn(text) => policy::load_text(text, "built-in policy", ctx),
            PolicySource::Text { origin, text } => policy::load_text(text, origin, ctx),
        }?;
        if let Some(why) = compiled.choose_miss_path() {
            log(why);
        }
        Ok((model, compiled))
    }
}

/// An uplink's side of its tunnels: its addresses and MTU.
#[derive(Debug, Clone, Copy)]
pub struct Outer {
    pub mac: [u8; 6],
    pub ip: IpAddr,
    pub mtu: u16,
}

/// One uplink: its port, its side of the tunnels that leave by it, and
/// its own neighbour table (ARP/ND on its port, for its own address).
pub struct UplinkHops {
    /// The uplink port's name.
    pub name: String,
    /// Its DPDK port id: its ARP/ND frames come in and go out there.
    pub port: u16,
    pub outer: Outer,
    pub neighbors: Neighbors,
}

/// Next hops of the tunnels: one neighbour table per uplink, by uplink
/// index (none on a decap-only or tool-only appliance).
pub struct NextHops {
    pub uplinks: Vec<UplinkHops>,
}

impl NextHops {
    /// Each uplink's table and the tunnels' outer addresses, from the
    /// config and the opened `ports`.
    pub fn new(cfg: &Config, ports: &[(PortConfig, Port)]) -> Result<NextHops, StartError> {
        let mut uplinks = Vec::with_capacity(cfg.uplinks.len());
        for (i, u) in cfg.uplinks.iter().enumerate() {
            let Some((_, port)) = ports.iter().find(|(pc, _)| pc.name == u.port) else {
                continue;
            };
            let mac = match u.mac {
                Some(m) => m.0,
                None => port.mac().map_err(StartError::UplinkMac)?,
            };
            let statics: Vec<(IpAddr, [u8; 6])> = cfg
                .neighbors
                .iter()
                .filter(|n| n.uplink == i)
                .map(|n| (n.ip, n.mac.0))
                .collect();
            let addr = u.address.addr;
            uplinks.push(UplinkHops {
                name: u.port.clone(),
                port: port.id(),
                outer: Outer {
                    mac,
                    ip: addr,
                    mtu: u.mtu,
                },
                neighbors: Neighbors::new(
                    Uplink {
                        mac,
                        addr,
                        refresh: u.arp_refresh,
                    },
                    &statics,
                ),
            });
        }
        Ok(NextHops { uplinks })
    }

    /// The uplink whose port is `port`, for its ARP/ND frames.
    pub fn on_port(&mut self, port: u16) -> Option<&mut UplinkHops> {
        self.uplinks.iter_mut().find(|u| u.port == port)
    }

    /// The tunnel template of `d`, if the next hop its route chose is
    /// resolved on its uplink; asks for the next hop's address otherwise.
    fn template(&mut self, d: &Destination) -> Option<EncapTemplate> {
        let d_name = &d.name;
        let d = d.tunnel()?;
        let up = self.uplinks.get_mut(usize::from(d.uplink))?;
        up.neighbors.want(d.next_hop);
        let mac = up.neighbors.lookup(d.next_hop)?;
        let outer = up.outer;
        let cfg = EncapConfig {
            tunnel: d.tunnel,
            outer: OuterConfig {
                src_mac: Address(outer.mac),
                dst_mac: Address(mac),
                vlan: d.vlan,
                src_ip: outer.ip,
                dst_ip: d.remote,
                dscp: d.dscp,
                ttl: d.ttl,
            },
            mtu: outer.mtu,
            oversize: d.oversize,
        };
        match EncapTemplate::new(&cfg) {
            Ok(t) => Some(t),
            Err(e) => {
                log(format!("destination {d_name:?}: {e}"));
                None
            }
        }
    }

    /// The MAC of a tunnel's next hop, if resolved.
    pub fn next_hop_mac(&self, t: &TunnelOut) -> Option<[u8; 6]> {
        self.uplinks
            .get(usize::from(t.uplink))
            .and_then(|u| u.neighbors.lookup(t.next_hop))
    }

    /// The name of uplink `i`.
    pub fn uplink_name(&self, i: u16) -> &str {
        self.uplinks
            .get(usize::from(i))
            .map_or("?", |u| u.name.as_str())
    }

    /// Destinations of `policy` whose next hop has no MAC yet.
    pub fn unresolved(&self, policy: &CompiledPolicy) -> Vec<String> {
        policy
            .destinations
            .iter()
            .filter(|d| d.tunnel().is_some_and(|t| self.next_hop_mac(t).is_none()))
            .map(|d| d.name.clone())
            .collect()
    }
}

/// The running policy and the tables published from it.
pub struct Publisher {
    tables: Arc<ArcSwap<Tables>>,
    policy: Arc<CompiledPolicy>,
    /// The running policy as written, for `show policy`.
    model: Policy,
    /// What SIGHUP and the controller's `reload` load again.
    source: PolicySource,
    ctx: Context,
    generation: u64,
    slots: AHashMap<String, u16>,
    seqs: AHashMap<String, Arc<AtomicU32>>,
    /// The running policy's destinations, for telemetry's thread.
    current: Arc<Mutex<Vec<DestSlot>>>,
    /// The tool ports and groups tool destinations send to.
    tools: Tools,
}

impl Publisher {
    /// Loads the starting policy; nothing is published yet.
    pub fn new(source: PolicySource, ctx: Context, tools: Tools) -> Result<Publisher, StartError> {
        let (model, policy) = source.load(&ctx)?;
        if policy.destinations.len() > MAX_DEST_SLOTS {
            return Err(StartError::TooManyDestinations(policy.destinations.len()));
        }
        let placeholder = Tables {
            generation: 0,
            policy: Arc::new(policy.clone()),
            dests: Vec::new(),
            tools: tools.tables(),
        };
        Ok(Publisher {
            tables: Arc::new(ArcSwap::from_pointee(placeholder)),
            policy: Arc::new(policy),
            model,
            source,
            ctx,
            generation: 0,
            slots: AHashMap::new(),
            seqs: AHashMap::new(),
            current: Arc::default(),
            tools,
        })
    }

    /// The tables the workers read.
    pub fn tables(&self) -> &Arc<ArcSwap<Tables>> {
        &self.tables
    }

    pub fn policy(&self) -> &CompiledPolicy {
        &self.policy
    }

    pub fn model(&self) -> &Policy {
        &self.model
    }

    pub fn tools(&self) -> &Tools {
        &self.tools
    }

    /// The tool ports and groups, to follow links (publish after a change).
    pub fn tools_mut(&mut self) -> &mut Tools {
        &mut self.tools
    }

    /// The running policy's destinations, as telemetry's thread reads them.
    pub fn current(&self) -> Arc<Mutex<Vec<DestSlot>>> {
        Arc::clone(&self.current)
    }

    /// Builds the workers' tables from the policy and the next hops, and
    /// publishes them.
    pub fn publish(&mut self, hops: &mut NextHops) -> Result<(), String> {
        let mut dests = Vec::with_capacity(self.policy.destinations.len());
        for d in &self.policy.destinations {
            let next = self.slots.len();
            let slot = *self.slots.entry(d.name.clone()).or_insert(next as u16);
            if usize::from(slot) >= MAX_DEST_SLOTS {
                return Err(format!(
                    "more than {MAX_DEST_SLOTS} destinations over the appliance's life"
                ));
            }
            dests.push(DestTable {
                slot,
                template: hops.template(d),
                seq: Arc::clone(self.seqs.entry(d.name.clone()).or_default()),
            });
        }
        if let Ok(mut n) = self.current.lock() {
            *n = self
                .policy
                .destinations
                .iter()
                .zip(&dests)
                .map(|(d, t)| DestSlot {
                    name: d.name.clone(),
                    slot: t.slot,
                    removed: false,
                })
                .collect();
        }
        self.generation += 1;
        self.tables.store(Arc::new(Tables {
            generation: self.generation,
            policy: Arc::clone(&self.policy),
            dests,
            tools: self.tools.tables(),
        }));
        Ok(())
    }

    /// Loads a policy from `src` and swaps it in; a bad one is refused
    /// with every problem and the running one stays. On success `src`
    /// becomes the source a reload loads. A refusal also lists every
    /// problem on its own, with its path (for a controller's nack).
    pub fn apply(
        &mut self,
        src: PolicySource,
        hops: &mut NextHops,
    ) -> Result<String, (String, Vec<String>)> {
        match src.load(&self.ctx) {
            Ok((model, p)) => {
                if p.destinations.len() > MAX_DEST_SLOTS {
                    let e = format!("policy has more than {MAX_DEST_SLOTS} destinations");
                    return Err((e.clone(), vec![e]));
                }
                let old = (
                    Arc::clone(&self.policy),
                    std::mem::replace(&mut self.model, model),
                );
                self.policy = Arc::new(p);
                // A reload is where sticky groups give members that came
                // back their share again.
                self.tools.relayout();
                if let Err(e) = self.publish(hops) {
                    (self.policy, self.model) = old;
                    return Err((e.clone(), vec![e]));
                }
                self.source = src;
                Ok(format!(
                    "policy {:?} loaded: {} rule(s), {} destination(s)",
                    self.policy.version,
                    self.policy.rule_names.len(),
                    self.policy.destinations.len()
                ))
            }
            Err(e) => Err((
                format!("{e}; keeping policy {:?}", self.policy.version),
                crate::agent::policy_errors(&e),
            )),
        }
    }

    /// Where the running policy came from: what a reload loads.
    pub fn source(&self) -> &PolicySource {
        &self.source
    }

    /// Every destination ever published, in slot order: those of earlier
    /// policies keep their slot and counters, marked removed.
    pub fn slots(&self) -> Vec<DestSlot> {
        let mut v: Vec<DestSlot> = self
            .slots
            .iter()
            .map(|(n, s)| DestSlot {
                name: n.clone(),
                slot: *s,
                removed: !self.policy.destinations.iter().any(|d| &d.name == n),
            })
            .collect();
        v.sort_by_key(|d| d.slot);
        v
    }
}
