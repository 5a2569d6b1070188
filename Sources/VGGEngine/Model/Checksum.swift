/// A 64-bit hash of a float buffer's exact bits, for comparing replicas and
/// runs: equal hashes mean bitwise-equal parameters (up to collisions).
public enum Checksum {
    public static func of(_ p: UnsafePointer<Float>, count: Int) -> UInt64 {
        var h: UInt64 = 0x6A09_E667_F3BC_C908 ^ UInt64(count)
        // Read the bits through the Float pointer: rebinding the arena's memory
        // to UInt32 (bindMemory) would leave later Float accesses undefined.
        @inline(__always) func word(_ i: Int) -> UInt64 { UInt64(p[i].bitPattern) }
        var i = 0
        // Four independent lanes keep the multiplier latency off the critical path.
        var l0 = h, l1 = h &+ 1, l2 = h &+ 2, l3 = h &+ 3
        while i + 4 <= count {
            l0 = (l0 ^ word(i)) &* 0x100_0000_01B3
            l1 = (l1 ^ word(i + 1)) &* 0x100_0000_01B3
            l2 = (l2 ^ word(i + 2)) &* 0x100_0000_01B3
            l3 = (l3 ^ word(i + 3)) &* 0x100_0000_01B3
            i += 4
        }
        while i < count { l0 = (l0 ^ word(i)) &* 0x100_0000_01B3; i += 1 }
        h = CounterRandom.mix(l0 ^ CounterRandom.mix(l1 ^ CounterRandom.mix(l2 ^ CounterRandom.mix(l3))))
        return h
    }

    public static func of(_ arena: FloatArena) -> UInt64 { of(arena.base, count: arena.count) }

    public static func hex(_ h: UInt64) -> String {
        let s = String(h, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}
