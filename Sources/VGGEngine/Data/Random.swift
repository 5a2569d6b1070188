/// Counter-based random numbers: every value is a pure function of its key
/// (seed, stream, index), so any rank can compute any sample, any dropout
/// mask or any weight without sharing generator state, and the results do
/// not depend on the order or the thread that computes them.
public enum CounterRandom {
    /// SplitMix64's finaliser: a bijective 64-bit mix with full avalanche.
    @inline(__always)
    public static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A key for one stream of values, from up to four integers.
    @inline(__always)
    public static func key(_ a: UInt64, _ b: UInt64 = 0, _ c: UInt64 = 0, _ d: UInt64 = 0) -> UInt64 {
        mix(mix(mix(mix(a) ^ b) ^ c) ^ d)
    }

    /// The i-th 64-bit value of a stream.
    @inline(__always)
    public static func bits(_ key: UInt64, _ i: Int) -> UInt64 {
        mix(key ^ (UInt64(truncatingIfNeeded: i) &* 0xD6E8_FEB8_6659_FD93))
    }

    /// Uniform in [0, 1), 24 bits.
    @inline(__always)
    public static func unit(_ key: UInt64, _ i: Int) -> Float {
        Float(bits(key, i) >> 40) * (1.0 / 16_777_216.0)
    }

    /// Uniform in [-1, 1).
    @inline(__always)
    public static func symmetric(_ key: UInt64, _ i: Int) -> Float {
        unit(key, i) * 2 - 1
    }
}

/// Stream identifiers, so that different uses of the same seed never collide.
public enum RandomStream: UInt64 {
    case weights = 1, label = 2, prototype = 3, noise = 4, dropout = 5, powerSGD = 6
}
