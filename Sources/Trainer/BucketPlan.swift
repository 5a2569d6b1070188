import VGGEngine
import Vocabulary

/// Gradient buckets: consecutive layers, grouped in reverse layer order
/// (the order backward produces them) until a bucket reaches the target
/// size, as PyTorch DDP does. Because the arena holds layers in forward
/// order, each bucket is one contiguous slice of it.
public struct BucketPlan: Equatable, Sendable {
    /// Buckets in the order backward completes them.
    public var buckets: [Bucket]
    /// For each layer with parameters, the bucket it belongs to.
    public var bucketOfLayer: [Int: Int]

    /// `targetBytes` 0 puts every layer with parameters in its own bucket.
    public init(layers specs: [LayerSpec], targetBytes: Int) {
        var offsets: [Int] = []
        var offset = 0
        for s in specs { offsets.append(offset); offset += s.parameterCount }

        var buckets: [Bucket] = []
        var current: [Int] = []
        var bytes = 0
        func close() {
            guard let last = current.last, let first = current.first else { return }
            // Backward order: `first` is the highest layer; `last` the lowest.
            let start = offsets[last]
            let end = offsets[first] + specs[first].parameterCount
            buckets.append(Bucket(index: buckets.count, layers: current, offset: start, count: end - start))
            current = []
            bytes = 0
        }
        for i in stride(from: specs.count - 1, through: 0, by: -1) where specs[i].parameterCount > 0 {
            current.append(i)
            bytes += specs[i].parameterCount * 4
            if bytes >= targetBytes { close() }
        }
        close()
        self.buckets = buckets
        var map: [Int: Int] = [:]
        for (b, e) in buckets.enumerated() { for l in e.layers { map[l] = b } }
        bucketOfLayer = map
    }

    public init(spec: NetworkSpec, bucketMB: Double) {
        self.init(layers: spec.layers, targetBytes: Int(bucketMB * 1024 * 1024))
    }

    /// A hash of the plan, to check that every rank built the same one.
    public var fingerprint: UInt64 {
        var h = CounterRandom.key(UInt64(buckets.count))
        for e in buckets {
            h = CounterRandom.key(h, UInt64(e.offset), UInt64(e.count), UInt64(e.layers.count))
        }
        return h
    }
}

extension Bucket {
    /// The bucket's slice of an arena.
    public var slice: ArenaSlice { ArenaSlice(offset: offset, count: count) }
}
