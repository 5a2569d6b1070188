import Foundation

/// The run's timeline in Chrome's trace event format (chrome://tracing,
/// Perfetto): one process per rank, a compute row and a communication row,
/// each layer's forward and backward and each bucket's allreduce as slices.
public enum Timeline {
    /// Where each event of a timed step sits in `RankTimings.timeline`: per
    /// step, the step's start and length, then per layer forward start and
    /// length and backward start and length, then per bucket allreduce start
    /// and length, then per bucket its compression compute (start, seconds:
    /// PowerSGD's compute for the bucket, interleaved with its two
    /// allreduces, drawn from the bucket's start). A start of −1 means it did not run. Times are seconds
    /// since the common start. The recorder writes and `chromeTrace` reads
    /// through this one layout.
    public struct Layout: Sendable {
        public let layers: Int
        public let buckets: Int
        public init(layers: Int, buckets: Int) { self.layers = layers; self.buckets = buckets }
        /// Values per timed step.
        public var stride: Int { 2 + 4 * layers + 4 * buckets }
        /// Offsets within a step: start, then length at +1.
        public var step: Int { 0 }
        public func forward(_ layer: Int) -> Int { 2 + 4 * layer }
        public func backward(_ layer: Int) -> Int { 4 + 4 * layer }
        public func bucket(_ b: Int) -> Int { 2 + 4 * layers + 2 * b }
        public func compression(_ b: Int) -> Int { 2 + 4 * layers + 2 * buckets + 2 * b }
    }

    struct Event: Encodable {
        var name: String
        var cat: String?
        var ph: String
        var ts: Double?
        var dur: Double?
        var pid: Int
        var tid: Int
        var args: [String: String]?
    }

    struct File: Encodable {
        var traceEvents: [Event]
        var displayTimeUnit = "ms"
        var otherData: [String: String]
    }

    /// Builds the trace from every rank's timeline. Times are microseconds
    /// since the barrier that started the timed loop on every rank.
    public static func chromeTrace(ranks: [RankTimings], hosts: [String], layerNames: [String],
                                   bucketNames: [String], title: String) throws -> Data {
        var events: [Event] = []
        let layout = Layout(layers: layerNames.count, buckets: bucketNames.count)
        let stride = layout.stride
        for (r, t) in ranks.enumerated() {
            let host = r < hosts.count ? hosts[r] : "?"
            events.append(Event(name: "process_name", ph: "M", pid: r, tid: 0, args: ["name": "rank \(r) (\(host))"]))
            events.append(Event(name: "process_sort_index", ph: "M", pid: r, tid: 0, args: ["sort_index": "\(r)"]))
            events.append(Event(name: "thread_name", ph: "M", pid: r, tid: 0, args: ["name": "compute"]))
            events.append(Event(name: "thread_name", ph: "M", pid: r, tid: 1, args: ["name": "communication"]))
            let steps = stride > 0 ? t.timeline.count / stride : 0
            var compressed = false
            for s in 0..<steps {
                let v = t.timeline[(s * stride)..<((s + 1) * stride)].map { $0 }
                let o = layout.step
                events.append(Event(name: "step \(s)", cat: "step", ph: "X", ts: v[o] * 1e6, dur: v[o + 1] * 1e6, pid: r, tid: 0, args: nil))
                for (l, name) in layerNames.enumerated() {
                    let f = layout.forward(l), b = layout.backward(l)
                    events.append(Event(name: "\(name) fwd", cat: "forward", ph: "X", ts: v[f] * 1e6, dur: v[f + 1] * 1e6,
                                        pid: r, tid: 0, args: nil))
                    if v[b] >= 0 {
                        events.append(Event(name: "\(name) bwd", cat: "backward", ph: "X", ts: v[b] * 1e6, dur: v[b + 1] * 1e6,
                                            pid: r, tid: 0, args: nil))
                    }
                }
                for (b, name) in bucketNames.enumerated() {
                    let o = layout.bucket(b)
                    if v[o] >= 0 {
                        events.append(Event(name: name, cat: "allreduce", ph: "X", ts: v[o] * 1e6, dur: v[o + 1] * 1e6,
                                            pid: r, tid: 1, args: ["step": "\(s)"]))
                    }
                    let c = layout.compression(b)
                    if v[c] >= 0 && v[c + 1] > 0 {
                        compressed = true
                        events.append(Event(name: "compress bucket \(b)", cat: "compression", ph: "X", ts: v[c] * 1e6,
                                            dur: v[c + 1] * 1e6, pid: r, tid: 2,
                                            args: ["step": "\(s)", "note": "compute total, interleaved with the bucket's allreduces"]))
                    }
                }
            }
            if compressed {
                events.append(Event(name: "thread_name", ph: "M", pid: r, tid: 2, args: ["name": "compression"]))
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(File(traceEvents: events, otherData: ["title": title]))
    }
}
