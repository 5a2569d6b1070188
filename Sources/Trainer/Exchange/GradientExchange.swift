import Comm
import Reports
import VGGEngine
import Vocabulary

/// How a step's gradients become its update. Backward tells the exchange
/// when each layer's gradients are final (`layerReady`); `finish` ends the
/// step with the gradients averaged over the group and the optimizer applied
/// (or not applied at all, when a summed gradient is not finite and the run
/// skips such steps). Implementations: `InlineAllreduce` (after backward, on
/// the compute thread; also the one-rank case) and `OverlappedAllreduce`
/// (during backward, on a communication thread).
public protocol GradientExchange: AnyObject {
    /// For the layout line: where and when the gradients travel.
    var description: String { get }
    /// How its allreduces are waited for ("none" when it sends nothing), for the report.
    var waitDescription: String { get }
    /// Per bucket, the last step's allreduce start and end (Clock seconds; 0 when none ran).
    var bucketStart: [Double] { get }
    var bucketEnd: [Double] { get }
    /// Bytes handed so far to collectives between ranks that do not share memory.
    var bytesSent: Int { get }
    /// What the same collectives would have carried as uncompressed fp32, bytes so far.
    var fp32BytesSent: Int { get }

    /// Per bucket, the last step's compression compute seconds (empty without compression).
    var bucketCompression: [Double] { get }

    func beginStep(_ step: Int)
    /// Layer `layer`'s weight and bias gradients are final.
    func layerReady(_ layer: Int)
    /// After backward: completes the exchange and the update. Sets
    /// `times.allreduce` and `times.exposed`; says where a summed gradient
    /// holds a NaN or Inf, if one does (the same on every rank).
    func finish(step: Int, times: inout StepTimes) throws -> NonfiniteGradient?
    /// Stops helper threads; call after the last step.
    func stop()
}

extension GradientExchange {
    var bucketCompression: [Double] { [] }
}

/// What every exchange does once a bucket's gradient is summed: scan it for
/// NaN/Inf and step the optimizer on its slice with scale 1/N (sum → mean).
/// Every rank holds the same sums, so every rank reaches the same verdict on
/// a non-finite gradient without talking. To skip a step's update, all
/// buckets are checked before any is applied; otherwise each bucket is
/// applied as soon as it has arrived.
struct BucketUpdate {
    let parameters: FloatArena
    let gradients: FloatArena
    let layerSlices: [ArenaSlice]
    /// Momentum; nil when the mode has no update (forward-backward).
    let velocity: FloatArena?
    let optimizer: SGD
    let scale: Float
    let applyAsTheyArrive: Bool
    private(set) var nonfinite: NonfiniteGradient?

    init(network: Network, velocity: FloatArena?, optimizer: SGD, ranks: Int, skipNonfinite: Bool) {
        parameters = network.parameters
        gradients = network.gradients
        layerSlices = network.layers.map(\.parameterSlice)
        self.velocity = velocity
        self.optimizer = optimizer
        scale = 1 / Float(ranks)
        applyAsTheyArrive = !skipNonfinite
    }

    mutating func begin() { nonfinite = nil }

    /// Bucket b's summed gradient is in place.
    mutating func arrived(_ b: Bucket) {
        if nonfinite == nil && !NonfiniteScan.isFinite(gradients, b.slice) {
            let layer = NonfiniteScan.firstBadLayer(b, in: gradients, layerSlices: layerSlices) ?? b.lowestLayer
            nonfinite = NonfiniteGradient(bucket: b.index, layer: layer)
        }
        if applyAsTheyArrive && nonfinite == nil, let v = velocity {
            optimizer.step(parameters: parameters, gradients: gradients, velocity: v, slice: b.slice, gradientScale: scale)
        }
    }

    /// After every bucket arrived: the deferred update, when no bucket was bad.
    func finish(_ buckets: [Bucket]) -> NonfiniteGradient? {
        if let bad = nonfinite { return bad }
        if !applyAsTheyArrive, let v = velocity {
            for b in buckets {
                optimizer.step(parameters: parameters, gradients: gradients, velocity: v, slice: b.slice, gradientScale: scale)
            }
        }
        return nil
    }
}

/// Counts down each bucket's layers during backward; says when a bucket is complete.
struct BucketCountdown {
    let sizes: [Int]
    let bucketOfLayer: [Int: Int]
    private var remaining: [Int]

    init(plan: BucketPlan) {
        sizes = plan.buckets.map(\.layers.count)
        bucketOfLayer = plan.bucketOfLayer
        remaining = sizes
    }

    mutating func reset() { for b in remaining.indices { remaining[b] = sizes[b] } }

    /// The bucket that layer `layer` completes, if it does.
    mutating func layerReady(_ layer: Int) -> Int? {
        guard let b = bucketOfLayer[layer] else { return nil }
        remaining[b] -= 1
        return remaining[b] == 0 ? b : nil
    }
}
