import Foundation
import Reports
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
    let layout: Timeline.Layout
    private(set) var records: [StepTimes] = []
    /// Per layer, summed over timed steps (means after `close`).
    private(set) var layers: [LayerTimes]
    /// Per bucket, summed over timed steps: allreduce seconds.
    private(set) var bucketSeconds: [Double]
    /// Timeline of the timed steps (see Timeline), when recording.
    private(set) var timeline: [Double] = []
    /// Resident memory at the 100th timed step and at the end, bytes.
    private(set) var residentAtStep100 = 0
    private(set) var residentAtEnd = 0
    /// The largest proportional set size sampled, bytes.
    private(set) var peakProportional = 0
    /// Clock time all ranks agree is zero (taken right after a barrier).
    var origin = 0.0
    /// Guards `records` against the signal handler's snapshot.
    private let lock = NSLock()

    init(layers: Int, buckets: Int, steps: Int, hasBackward: Bool, keepsTimeline: Bool) {
        layerCount = layers
        bucketCount = buckets
        self.hasBackward = hasBackward
        self.keepsTimeline = keepsTimeline
        layout = Timeline.Layout(layers: layers, buckets: buckets)
        self.layers = Array(repeating: LayerTimes(), count: layers)
        bucketSeconds = Array(repeating: 0, count: buckets)
        records.reserveCapacity(steps)
        if keepsTimeline { timeline.reserveCapacity(steps * layout.stride) }
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
            layers[l].forward += network.forwardSeconds[l]
            layers[l].forwardGemm += network.forwardGemmSeconds[l]
            if hasBackward {
                layers[l].backward += network.backwardSeconds[l]
                layers[l].backwardGemm += network.backwardGemmSeconds[l]
            }
        }
        if timed == 0 { peakProportional = max(peakProportional, currentProportionalBytes()) }
        if timed + 1 == 100 {
            residentAtStep100 = currentResidentBytes()
            peakProportional = max(peakProportional, currentProportionalBytes())
        }
    }

    /// One timed step's events (`Timeline.Layout`), relative to `origin`.
    private func appendTimeline(stepStart: Double, wall: Double, network: Network, exchange: GradientExchange?) {
        let s = timeline.count
        timeline.append(contentsOf: repeatElement(0, count: layout.stride))
        timeline[s + layout.step] = stepStart - origin
        timeline[s + layout.step + 1] = wall
        for l in 0..<layerCount {
            let f = s + layout.forward(l), b = s + layout.backward(l)
            timeline[f] = network.forwardStart[l] - origin
            timeline[f + 1] = network.forwardSeconds[l]
            timeline[b] = hasBackward ? network.backwardStart[l] - origin : -1
            timeline[b + 1] = hasBackward ? network.backwardSeconds[l] : 0
        }
        for k in 0..<bucketCount {
            let start = exchange?.bucketStart[k] ?? 0, end = exchange?.bucketEnd[k] ?? 0
            timeline[s + layout.bucket(k)] = end > 0 ? start - origin : -1
            timeline[s + layout.bucket(k) + 1] = end - start
            let compute = exchange?.bucketCompression ?? []
            timeline[s + layout.compression(k)] = k < compute.count && end > 0 ? start - origin : -1
            timeline[s + layout.compression(k) + 1] = k < compute.count ? compute[k] : 0
        }
    }

    /// After the last step: sums become means over the timed steps.
    func close() {
        residentAtEnd = currentResidentBytes()
        peakProportional = max(peakProportional, currentProportionalBytes())
        let n = Double(max(records.count, 1))
        for l in 0..<layerCount {
            layers[l].forward /= n; layers[l].backward /= n
            layers[l].forwardGemm /= n; layers[l].backwardGemm /= n
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
        var t = RankTimings(steps: snapshot(), layerMeans: layers,
                            bucketMeans: bucketSeconds, peakRssBytes: peakResidentBytes(), peakGflops: peakGflops,
                            timeline: timeline)
        t.residentAtStep100 = residentAtStep100
        t.residentAtEnd = residentAtEnd
        t.skippedSteps = skippedSteps
        t.peakPssBytes = peakProportional
        return t
    }
}
