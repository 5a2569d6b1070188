import Foundation
import VGGEngine
import Vocabulary

/// What the timed steps measured on this rank: each step's times, per-layer
/// and per-bucket sums (means after `close`), resident memory samples and,
/// when asked, the timeline for the trace. Capacity is reserved up front;
/// recording a step allocates nothing.
final class StepRecorder {
    let layerCount: Int
    let bucketCount: Int
    let hasBackward: Bool
    let keepsTimeline: Bool
    private(set) var records: [StepTimes] = []
    private(set) var layerForward: [Double]
    private(set) var layerBackward: [Double]
    private(set) var layerForwardGemm: [Double]
    private(set) var layerBackwardGemm: [Double]
    /// Per bucket, summed over timed steps: allreduce seconds.
    private(set) var bucketSeconds: [Double]
    /// Timeline of the timed steps (see Timeline), when recording.
    private(set) var timeline: [Double] = []
    /// Resident memory at the 100th timed step and at the end, bytes.
    private(set) var residentAtStep100 = 0
    private(set) var residentAtEnd = 0
    /// Clock time all ranks agree is zero (taken right after a barrier).
    var origin = 0.0
    /// Guards `records` against the signal handler's snapshot.
    private let lock = NSLock()

    init(layers: Int, buckets: Int, steps: Int, hasBackward: Bool, keepsTimeline: Bool) {
        layerCount = layers
        bucketCount = buckets
        self.hasBackward = hasBackward
        self.keepsTimeline = keepsTimeline
        layerForward = Array(repeating: 0, count: layers)
        layerBackward = layerForward
        layerForwardGemm = layerForward
        layerBackwardGemm = layerForward
        bucketSeconds = Array(repeating: 0, count: buckets)
        records.reserveCapacity(steps)
        if keepsTimeline { timeline.reserveCapacity(steps * Timeline.stride(layers: layers, buckets: buckets)) }
    }

    /// Clears everything for a new run; `origin` is the common zero.
    func start(origin: Double) {
        lock.lock()
        records.removeAll(keepingCapacity: true)
        lock.unlock()
        timeline.removeAll(keepingCapacity: true)
        self.origin = origin
    }

    /// A warm-up step: its bucket times do not count.
    func discardWarmup() {
        for b in bucketSeconds.indices { bucketSeconds[b] = 0 }
    }

    /// The `timed`-th timed step, which started at `stepStart`.
    func record(_ times: StepTimes, timed: Int, stepStart: Double, network: Network, exchange: GradientExchange?) {
        lock.lock()
        records.append(times)
        lock.unlock()
        if let e = exchange {
            for b in bucketSeconds.indices { bucketSeconds[b] += e.bucketEnd[b] - e.bucketStart[b] }
        }
        if keepsTimeline { appendTimeline(stepStart: stepStart, wall: times.wall, network: network, exchange: exchange) }
        for l in 0..<layerCount {
            layerForward[l] += network.forwardSeconds[l]
            layerForwardGemm[l] += network.forwardGemmSeconds[l]
            if hasBackward {
                layerBackward[l] += network.backwardSeconds[l]
                layerBackwardGemm[l] += network.backwardGemmSeconds[l]
            }
        }
        if timed + 1 == 100 { residentAtStep100 = currentResidentBytes() }
    }

    /// One timed step's events, relative to `origin`: step start and length,
    /// then per layer forward start/length and backward start/length, then per
    /// bucket allreduce start/length (start −1 when it did not run).
    private func appendTimeline(stepStart: Double, wall: Double, network: Network, exchange: GradientExchange?) {
        timeline.append(stepStart - origin)
        timeline.append(wall)
        for l in 0..<layerCount {
            timeline.append(network.forwardStart[l] - origin)
            timeline.append(network.forwardSeconds[l])
            timeline.append(hasBackward ? network.backwardStart[l] - origin : -1)
            timeline.append(hasBackward ? network.backwardSeconds[l] : 0)
        }
        for b in 0..<bucketCount {
            let start = exchange?.bucketStart[b] ?? 0, end = exchange?.bucketEnd[b] ?? 0
            timeline.append(end > 0 ? start - origin : -1)
            timeline.append(end - start)
        }
    }

    /// After the last step: sums become means over the timed steps.
    func close() {
        residentAtEnd = currentResidentBytes()
        let n = Double(max(records.count, 1))
        for l in 0..<layerCount {
            layerForward[l] /= n; layerBackward[l] /= n
            layerForwardGemm[l] /= n; layerBackwardGemm[l] /= n
        }
        for b in bucketSeconds.indices { bucketSeconds[b] /= n }
    }

    /// A copy of the records so far (safe to call from the signal queue).
    func snapshot() -> [StepTimes] {
        lock.lock()
        defer { lock.unlock() }
        return records
    }

    /// What this rank measured, for the report.
    func timings(peakGflops: Double, skippedSteps: Int) -> RankTimings {
        var t = RankTimings(steps: snapshot(), layerMeans: layerForward + layerBackward + layerForwardGemm + layerBackwardGemm,
                            bucketMeans: bucketSeconds, peakRssBytes: peakResidentBytes(), peakGflops: peakGflops,
                            timeline: timeline)
        t.residentAtStep100 = residentAtStep100
        t.residentAtEnd = residentAtEnd
        t.skippedSteps = skippedSteps
        return t
    }
}
