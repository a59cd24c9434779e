//! Zero-copy header views and emitters, in the style of smoltcp's `wire`:
//! a `Packet<T: AsRef<[u8]>>` view whose accessors never panic and never
//! read past the buffer, a `Repr` with `parse`/`emit`, unknown values kept.
