import VGGEngine
import Vocabulary

/// The NaN/Inf check on summed gradients.
enum NonfiniteScan {
    /// True when a slice of an arena holds no NaN or Inf. x − x is 0 for
    /// finite x and NaN otherwise; eight independent SIMD accumulators make
    /// it one pass at memory speed.
    static func isFinite(_ arena: FloatArena, _ slice: ArenaSlice) -> Bool {
        let g = arena.base + slice.offset
        let n = slice.count
        var acc = SIMD8<Float>(repeating: 0)
        var i = 0
        let raw = UnsafeRawPointer(g)
        while i + 8 <= n {
            let v = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            acc += v - v
            i += 8
        }
        var tail: Float = 0
        while i < n { tail += g[i] - g[i]; i += 1 }
        return acc == SIMD8<Float>(repeating: 0) && tail == 0
    }

    /// The first layer of `bucket`, in forward order, whose gradient is not
    /// finite (all the bucket's layer names when none is alone to blame).
    static func firstBadLayer(_ bucket: Bucket, network: Network, names: [String]) -> String {
        for l in bucket.layers.sorted() where !isFinite(network.gradients, network.layers[l].parameterSlice) {
            return names[l]
        }
        return bucket.layers.map { names[$0] }.joined(separator: "/")
    }
}
