import Comm
import Reports
import VGGEngine
import Vocabulary

/// Each bucket's allreduce runs on the compute thread after backward, then
/// its update. With a one-rank group nothing travels: the update alone.
/// With a compressor, each bucket's exchange is PowerSGD's (its two
/// allreduces and its compute), on the compute thread too.
final class InlineAllreduce: GradientExchange {
    let group: GradientGroup
    let buckets: [Bucket]
    let base: UnsafeMutablePointer<Float>
    let wire: GradientWire
    let watchdog: Watchdog?
    var update: BucketUpdate
    let compressor: PowerSGD?
    var bucketCompression: [Double] { compressor?.bucketSeconds ?? [] }
    private(set) var fp32BytesSent = 0
    private(set) var bucketStart: [Double]
    private(set) var bucketEnd: [Double]

    init(group: GradientGroup, network: Network, plan: BucketPlan, update: BucketUpdate, dtype: GradientDType,
         wait: CommWait = .blocking, pollMicroseconds: Int = 200, watchdog: Watchdog?, compressor: PowerSGD? = nil) {
        self.group = group
        buckets = plan.buckets
        base = network.gradients.base
        // One rank sends nothing: no staging buffer, no rounding to 16 bits.
        wire = GradientWire(dtype: group.size > 1 ? dtype : .fp32, capacity: plan.buckets.map(\.count).max() ?? 0,
                            wait: wait, pollMicroseconds: pollMicroseconds)
        self.watchdog = watchdog
        self.update = update
        self.compressor = compressor
        bucketStart = Array(repeating: 0, count: buckets.count)
        bucketEnd = bucketStart
    }

    var description: String {
        let how = group.size > 1 ? "MPI_Allreduce on the compute thread, after backward" : "none (one rank)"
        return compressor.map { "\(how), \($0.settings.description)" } ?? how
    }
    var waitDescription: String { group.size > 1 ? wire.waitDescription : "none" }
    var bytesSent: Int { wire.bytesSent }

    func beginStep(_ step: Int) {
        for b in buckets.indices { bucketStart[b] = 0; bucketEnd[b] = 0 }
        update.begin()
        compressor?.beginStep()
    }

    func layerReady(_ layer: Int) {}

    func finish(step: Int, times: inout StepTimes) throws -> NonfiniteGradient? {
        for b in buckets {
            if let compressor {
                let c0 = Clock.now()
                let c = try compressor.exchange(b, gradients: base, group: group, wire: wire, step: step, watchdog: watchdog)
                bucketStart[b.index] = c0
                bucketEnd[b.index] = Clock.now()
                times.allreduce += c
                times.exposed += c
                if group.size > 1 { fp32BytesSent += b.bytes }
            } else if group.size > 1 {
                let c0 = Clock.now()
                watchdog?.announce(step: step, id: b.index)
                try group.allreduceSum(base + b.offset, count: b.count, wire: wire)
                watchdog?.completed()
                bucketStart[b.index] = c0
                bucketEnd[b.index] = Clock.now()
                let c = bucketEnd[b.index] - c0
                times.allreduce += c
                times.exposed += c
                fp32BytesSent += b.bytes
            }
            update.arrived(b)
        }
        if let compressor { times.compression = compressor.computeSeconds }
        let bad = update.finish(buckets)
        if bad != nil { compressor?.reset() }
        return bad
    }

    func stop() {}
}
