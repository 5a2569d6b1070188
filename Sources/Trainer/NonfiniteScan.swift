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

    /// The first layer of `bucket`, in forward order, whose gradient in
    /// `arena` holds a NaN or Inf; only the part inside `within` is read.
    static func firstBadLayer(_ bucket: Bucket, in arena: FloatArena, layerSlices: [ArenaSlice],
                              within: ArenaSlice? = nil) -> Int? {
        for l in bucket.layers.sorted() {
            var s = layerSlices[l]
            if let w = within {
                let lo = max(s.offset, w.offset), hi = min(s.end, w.end)
                guard lo < hi else { continue }
                s = ArenaSlice(offset: lo, count: hi - lo)
            }
            if !isFinite(arena, s) { return l }
        }
        return nil
    }
}

/// A summed gradient that holds a NaN or Inf: the first such bucket (in the
/// order backward completes them) and its first such layer (forward order).
public struct NonfiniteGradient: Equatable, Sendable {
    public var bucket: Int
    public var layer: Int
}
