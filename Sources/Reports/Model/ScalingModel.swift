import Foundation
import Vocabulary

/// One rank's compute, measured on one rank: what the step costs without
/// communication, and the bucket plan the trainer would use.
public struct ComputeProfile: Codable, Equatable, Sendable {
    /// Batch per rank the times were measured at.
    public var batchPerRank: Int
    /// Seconds per step: data generation.
    public var data: Double
    /// Forward and objective.
    public var forward: Double
    /// Backward per layer, forward order (layer 0 is the input side).
    public var layerBackward: [Double]
    /// The optimizer over all parameters (independent of the batch).
    public var optimizer: Double
    /// The bucket plan, in the order backward completes the buckets; layer
    /// indices as in `layerBackward`. A bucket's allreduce can start once
    /// backward has finished its `lowestLayer`.
    public var buckets: [Bucket]
    /// Allreduce during backward (true) or after it.
    public var overlap: Bool

    public init(batchPerRank: Int, data: Double, forward: Double, layerBackward: [Double], optimizer: Double,
                buckets: [Bucket], overlap: Bool = true) {
        self.batchPerRank = batchPerRank
        self.data = data
        self.forward = forward
        self.layerBackward = layerBackward
        self.optimizer = optimizer
        self.buckets = buckets
        self.overlap = overlap
    }

    public var backward: Double { layerBackward.reduce(0, +) }
    /// Seconds of compute per step: data, forward, backward and optimizer.
    public var stepSeconds: Double { data + forward + backward + optimizer }
    public var gradientBytes: Int { buckets.map(\.bytes).reduce(0, +) }

    /// Checks what the model relies on: a positive batch, times ≥ 0, buckets
    /// naming real layers.
    public func validate() throws {
        guard batchPerRank >= 1 else { throw TrainerError.usage("profile: batch per rank must be at least 1") }
        let times = [data, forward, optimizer] + layerBackward
        guard times.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
            throw TrainerError.usage("profile: phase and layer times must be finite and ≥ 0")
        }
        guard !buckets.isEmpty else { throw TrainerError.usage("profile: no gradient buckets (a forward-only run?)") }
        for b in buckets {
            guard !b.layers.isEmpty else { throw TrainerError.usage("model: bucket \(b.index) has no layers") }
            guard b.count >= 0, b.layers.allSatisfy({ $0 >= 0 && $0 < layerBackward.count }) else {
                throw TrainerError.usage("profile: bucket with \(b.bytes) bytes names layer \(b.lowestLayer) of \(layerBackward.count)")
            }
        }
    }
}

/// When one bucket's allreduce ran in a predicted step, seconds from the start of backward.
public struct BucketTiming: Equatable, Sendable {
    public var ready: Double
    public var start: Double
    public var end: Double
}

/// One predicted step on N ranks.
public struct StepPrediction: Equatable, Sendable {
    public var ranks: Int
    public var batchPerRank: Int
    public var globalBatch: Int { ranks * batchPerRank }
    public var data: Double
    public var forward: Double
    public var backward: Double
    /// The optimizer's own work (without waits).
    public var update: Double
    /// Sum of the buckets' allreduce times (hidden or not).
    public var allreduce: Double
    /// Time the compute thread waits for buckets after backward.
    public var exposed: Double
    public var step: Double
    public var buckets: [BucketTiming]
    /// The exchange predicted (allreduce, or host-shared) and whether it overlaps backward.
    public var exchange: ExchangeChoice = .allreduce
    public var overlap = false
    /// The co-run profile the compute came from (its copies); nil: the one-rank profile.
    public var coRunCopies: Int? = nil
    /// Seconds `backward` holds for the host CPU its link's transfers took
    /// while backward ran (`LinkCost.hostCpuPerByte`); 0 without overlap across hosts.
    public var linkCPU = 0.0
    public var imagesPerSecond: Double { step > 0 ? Double(globalBatch) / step : 0 }
    /// The optimizer phase as the trainer measures it: update plus waits.
    public var optimizerPhase: Double { update + exposed }
}

/// A one-rank profile measured while copies of the same run (it among
/// them) shared one machine, `machine` (one host, a rank per copy): the
/// compute of ranks that load a host's cores and memory as heavily, the
/// sharing of the cores and the contention for caches and memory bandwidth
/// measured rather than modelled.
public struct CoRunProfile: Equatable, Sendable {
    public var compute: ComputeProfile
    public var machine: RankLayout
    /// Where it was read from, for the report.
    public var source: String

    public init(compute: ComputeProfile, copies: Int, cores: Int, threadsPerRank: Int, source: String = "") {
        self.compute = compute
        machine = RankLayout(hosts: 1, ranksPerHost: copies, threadsPerRank: threadsPerRank, cores: cores)
        self.source = source
    }

    public var copies: Int { machine.ranksPerHost }
}

/// Where the predicted ranks sit and which exchange is asked for; the model
/// then does what the trainer would do there (`RankLayout`): the exchange
/// `auto` picks, the overlap default, and threads beyond the host's cores
/// sharing them.
public struct ModelLayout: Equatable, Sendable {
    public var ranksPerHost: Int
    public var threadsPerRank: Int
    /// Cores per host; nil: enough for every thread.
    public var cores: Int?
    public var exchange: ExchangeChoice
    /// --overlap / --no-overlap as given; nil: the trainer's default.
    public var overlap: Bool?
    /// Compute measured under co-running copies; a host of 2 or more ranks
    /// takes the one whose threads per core match its own.
    public var coRuns: [CoRunProfile]

    public init(ranksPerHost: Int = 1, threadsPerRank: Int = 1, cores: Int? = nil, exchange: ExchangeChoice = .auto,
                overlap: Bool? = nil, coRuns: [CoRunProfile] = []) {
        self.ranksPerHost = ranksPerHost
        self.threadsPerRank = threadsPerRank
        self.cores = cores
        self.exchange = exchange
        self.overlap = overlap
        self.coRuns = coRuns
    }

    /// The co-run profile for ranks placed as `placed`: 2 or more ranks on a
    /// host, as many threads per core as when it was measured.
    public func coRun(for placed: RankLayout) -> CoRunProfile? {
        guard placed.ranksPerHost >= 2 else { return nil }
        return coRuns.first {
            abs($0.machine.threadsPerCore - placed.threadsPerCore) < 1e-9 && $0.machine.threadsPerRank == placed.threadsPerRank
        }
    }

    /// The trainer's layout for `ranks` ranks (fewer than `ranksPerHost` fill one host).
    public func ranks(_ n: Int) -> RankLayout {
        let perHost = min(ranksPerHost, n)
        return RankLayout(hosts: max(1, n / perHost), ranksPerHost: perHost, threadsPerRank: threadsPerRank,
                          cores: cores ?? perHost * threadsPerRank)
    }
}

/// Predicts data-parallel step time from a one-rank profile and an α-β link
/// cost, with the trainer's bucket plan and overlap: bucket b's allreduce can
/// start when backward has finished its lowest layer; buckets go out one after
/// another on one communication thread; after backward, the optimizer steps
/// bucket by bucket, each as soon as its allreduce is done. Pure.
///
/// Without a layout every rank has a host of its own and the profile's
/// overlap holds. With one (`ModelLayout`), the model does what the trainer
/// does there:
/// - threads beyond a host's cores share them: every compute time, and on
///   one host the allreduce too (shared-memory copies are CPU work), is
///   multiplied by threads ÷ cores;
/// - host-shared reduces within a host through memory, at the bandwidth the
///   profile's optimizer pass reached (it moves 5 bytes per gradient byte:
///   gradient, weight and momentum read, weight and momentum written): on
///   one host each of the L ranks sums its 1/L slice over the L gradients
///   and updates it in one pass (G + 4G/L bytes); across H hosts it sums its
///   slice (G + G/L bytes), the L slice owners allreduce their slices over
///   the H hosts at once, sharing the host's link (2(H−1)·α + 2((H−1)/H)·G·β
///   in all), bucket by bucket during backward when it overlaps, then each
///   rank updates its slice (the optimizer's time ÷ L).
/// - across hosts with overlap, the bytes a host's link moves while
///   backward runs take that host's CPU (`LinkCost.hostCpuPerByte`, measured
///   by allreduce-bench): idle cores absorb it first, the rest lengthens
///   backward on every rank of the host.
/// Memory-bandwidth and cache contention between ranks is not modelled but
/// measured: where the layout holds a co-run profile for the host's load
/// (`CoRunProfile`), its compute replaces the profile's (buckets kept) and
/// the threads ÷ cores factor is not applied to compute again, for
/// allreduce and host-shared ranks alike: a shared replica saves memory,
/// but each rank still streams the weights and its own activations through
/// the host's caches and memory as a copy with a replica of its own does
/// (docs/SCALING.md has the measurements).
public enum ScalingModel {
    /// `computeScale` multiplies every compute time (hosts faster or slower
    /// than the profiled one, or sharing cores). Data, forward and backward
    /// scale with the batch per rank (linear in the batch); the optimizer
    /// does not.
    public static func step(profile base: ComputeProfile, cost: LinkCost, ranks: Int, batchPerRank: Int,
                            computeScale: Double = 1, layout: ModelLayout? = nil) -> StepPrediction {
        let placed = layout?.ranks(ranks)
        let shared = ranks > 1 && (layout.map { placed!.runsHostShared($0.exchange) } ?? false)
        let coRun = placed.flatMap { layout!.coRun(for: $0) }
        let p = coRun.map { $0.compute.with(buckets: base.buckets) } ?? base
        let overlap: Bool
        if let l = layout, let w = placed {
            overlap = ranks > 1 && (shared ? w.hosts > 1 && l.overlap != false : l.overlap ?? w.overlapsAllreduce)
        } else {
            overlap = ranks > 1 && p.overlap
        }
        let sharing = placed?.oversubscription ?? 1
        let cpu = computeScale * (coRun == nil ? sharing : 1)
        let f = cpu * Double(batchPerRank) / Double(p.batchPerRank)
        let layers = p.layerBackward.map { $0 * f }
        let computed = layers.reduce(0, +)
        // readyAfter[i]: backward time from its start through layer i (layers run last to first).
        var readyAfter = [Double](repeating: 0, count: layers.count)
        var sum = 0.0
        for i in stride(from: layers.count - 1, through: 0, by: -1) {
            sum += layers[i]
            readyAfter[i] = sum
        }
        let totalBytes = Double(max(p.gradientBytes, 1))
        let share = p.buckets.map { Double($0.bytes) / totalBytes }
        let hosts = placed?.hosts ?? ranks
        let oneHost = placed != nil && hosts == 1
        // The time of one bucket's exchange once it starts, and the update left for after it.
        let exchange: (Bucket) -> Double
        // The ring whose bytes cross each host's link: over the hosts
        // (host-shared: the slices' owners together carry the bucket once) or
        // over all ranks.
        let ring = shared ? hosts : ranks
        var update = p.optimizer * cpu
        if shared, let w = placed {
            let l = Double(w.ranksPerHost)
            let perByte = p.optimizer * cpu / (5 * totalBytes)  // seconds per byte of memory traffic
            if hosts == 1 {
                exchange = { b in Double(b.bytes) * (1 + 4 / l) * perByte }  // sum and update in one pass
                update = 0
            } else {
                let link = LinkCost(alpha: cost.alpha, beta: cost.beta * l)
                exchange = { b in Double(b.bytes) * (1 + 1 / l) * perByte + link.allreduceSeconds(bytes: Double(b.bytes) / l, ranks: hosts) }
                update = p.optimizer * cpu / l
            }
        } else {
            let copies = oneHost ? computeScale * sharing : 1
            exchange = { b in cost.allreduceSeconds(bytes: Double(b.bytes), ranks: ranks) * copies }
        }

        // Buckets go out one after another once backward (`backward` long,
        // readiness times scaled to it) has finished their lowest layer.
        func overlapped(backward: Double) -> [BucketTiming] {
            let stretch = computed > 0 ? backward / computed : 1
            var commFree = 0.0
            return p.buckets.map { b in
                let ready = readyAfter[b.lowestLayer] * stretch
                let start = max(ready, commFree)
                commFree = start + exchange(b)
                return BucketTiming(ready: ready, start: start, end: commFree)
            }
        }
        // Overlapped across hosts, what a host's link moves while backward
        // runs costs that host CPU (`LinkCost.hostCpuPerByte`: the TCP stack,
        // MPI's copies and sums, the wait's tests). Cores the host's compute
        // threads leave idle take it first; the rest lengthens backward,
        // spread over the host's cores. Solved by iteration: a longer
        // backward overlaps more of the transfers.
        var backward = computed
        if overlap, hosts > 1, let w = placed, let gamma = cost.hostCpuPerByte, gamma > 0 {
            let cores = Double(max(w.cores, 1))
            let idle = max(0, cores - Double(w.ranksPerHost * w.threadsPerRank))
            for _ in 0..<100 {
                var work = 0.0
                for (b, t) in zip(p.buckets, overlapped(backward: backward)) where t.end > t.start {
                    let inside = max(0, min(t.end, backward) - t.start) / (t.end - t.start)
                    work += gamma * LinkCost.ringLinkBytes(Double(b.bytes), ranks: ring) * inside
                }
                let next = computed + max(0, work - idle * backward) / cores
                if abs(next - backward) < 1e-9 { backward = next; break }
                backward = next
            }
        }
        let linkCPU = backward - computed

        var timings: [BucketTiming] = []
        var t = backward
        var exposed = 0.0, allreduce = 0.0
        if overlap {
            timings = overlapped(backward: backward)
            allreduce = timings.reduce(0) { $0 + $1.end - $1.start }
            for (k, timing) in timings.enumerated() {
                if timing.end > t {
                    exposed += timing.end - t
                    t = timing.end
                }
                t += update * share[k]
            }
        } else if ranks > 1 {
            // Without overlap the compute thread exchanges each bucket, then steps it.
            for (k, b) in p.buckets.enumerated() {
                let d = exchange(b)
                timings.append(BucketTiming(ready: backward, start: t, end: t + d))
                allreduce += d
                exposed += d
                t += d + update * share[k]
            }
        } else {
            t += update
        }
        let data = p.data * f, forward = p.forward * f
        return StepPrediction(ranks: ranks, batchPerRank: batchPerRank, data: data, forward: forward, backward: backward,
                              update: update, allreduce: allreduce, exposed: exposed, step: data + forward + t,
                              buckets: timings, exchange: shared ? .hostShared : .allreduce, overlap: overlap,
                              coRunCopies: coRun?.copies, linkCPU: linkCPU)
    }

    /// Strong (global batch split over the ranks) or weak (batch per rank
    /// fixed) scaling over `ranks`. Rank counts that do not divide a strong
    /// global batch are left out and listed in `skipped`.
    public static func study(profile: ComputeProfile, cost: LinkCost, kind: StudyKind, batch: Int, ranks: [Int],
                             computeScale: Double = 1, layout: ModelLayout? = nil) throws -> ModelStudy {
        try profile.validate()
        guard kind != .sweep else { throw TrainerError.usage("model: the kind is strong or weak") }
        guard batch >= 1 else { throw TrainerError.usage("model: the batch must be at least 1, got \(batch)") }
        guard computeScale > 0, computeScale.isFinite else {
            throw TrainerError.usage("model: --compute-scale must be a positive number, got \(computeScale)")
        }
        guard !ranks.isEmpty, ranks.allSatisfy({ $0 >= 1 }) else {
            throw TrainerError.usage("model: rank counts must be positive integers")
        }
        var rows: [StepPrediction] = []
        var skipped: [Int] = []
        if let l = layout {
            guard l.ranksPerHost >= 1, l.threadsPerRank >= 1, (l.cores ?? 1) >= 1 else {
                throw TrainerError.usage("model: ranks per host, threads per rank and cores must be at least 1")
            }
        }
        for n in Set(ranks).sorted() {
            if let l = layout, n > l.ranksPerHost, n % l.ranksPerHost != 0 { skipped.append(n); continue }
            if kind == .strong {
                guard batch % n == 0 else { skipped.append(n); continue }
                rows.append(step(profile: profile, cost: cost, ranks: n, batchPerRank: batch / n, computeScale: computeScale,
                                 layout: layout))
            } else {
                rows.append(step(profile: profile, cost: cost, ranks: n, batchPerRank: batch, computeScale: computeScale,
                                 layout: layout))
            }
        }
        guard !rows.isEmpty else {
            throw TrainerError.usage("model: the global batch \(batch) divides by none of the rank counts \(ranks.map(String.init).joined(separator: " "))")
        }
        return ModelStudy(kind: kind, rows: rows, skipped: skipped)
    }
}

/// Predicted scaling: rows by rank count; speedup and efficiency relative to
/// the first row, with the formulas of measured studies (ScalingStudy).
public struct ModelStudy: Sendable {
    public var kind: StudyKind
    public var rows: [StepPrediction]
    public var skipped: [Int]

    public var baseline: StepPrediction { rows[0] }

    public func speedup(_ r: StepPrediction) -> Double {
        baseline.imagesPerSecond > 0 ? r.imagesPerSecond / baseline.imagesPerSecond : 0
    }

    /// Strong: T_b·N_b / (N·T_N); weak: T_b / T_N.
    public func efficiency(_ r: StepPrediction) -> Double {
        guard r.step > 0 else { return 0 }
        switch kind {
        case .strong: return baseline.step * Double(baseline.ranks) / (Double(r.ranks) * r.step)
        default: return baseline.step / r.step
        }
    }

    /// The CSV `vgg-dp report` writes for a scaling study (same columns), so
    /// that scripts/plot.py draws the same plots. One rank per host; phase
    /// columns are the model's; optimizer_s includes the waits, as measured.
    public func csv(model: String, imageSize: Int, mode: String, blasThreads: Int, file: String) -> String {
        func num(_ x: Double) -> String { x.isFinite ? "\(x)" : "" }
        return CSV.document(header: ScalingStudy.scalingColumns, rows: rows.map { r in
            [
                String(r.ranks), String(r.batchPerRank), String(r.globalBatch), String(r.ranks), String(blasThreads),
                num(r.step), "0", num(r.imagesPerSecond), num(speedup(r)), num(efficiency(r)),
                num(r.step > 0 ? r.exposed / r.step : 0), num(r.step > 0 ? r.allreduce / r.step : 0), "1",
                num(r.data), num(r.forward), num(r.backward), num(r.optimizerPhase), num(r.allreduce), num(r.exposed),
                kind.rawValue, model, String(imageSize), mode, file,
            ]
        })
    }

    /// A Markdown table, one row per rank count.
    public func markdownTable() -> [String] {
        func ms(_ x: Double) -> String { Text.fixed(x * 1000, x * 1000 >= 100 ? 1 : 2) }
        let header = ["ranks", "batch/rank", "global batch", "step ms", "compute ms", "allreduce ms", "exposed ms",
                      "images/s", "speedup", "efficiency"]
        let body = rows.map { r in
            [String(r.ranks), String(r.batchPerRank), String(r.globalBatch), ms(r.step),
             ms(r.data + r.forward + r.backward + r.update), ms(r.allreduce), ms(r.exposed),
             Text.fixed(r.imagesPerSecond, 1), Text.fixed(speedup(r), 1) + "×", Text.fixed(100 * efficiency(r), 1) + "%"]
        }
        return Markdown.table(header, body, leftColumns: 0)
    }
}

extension ComputeProfile {
    /// The profile a one-rank run report holds: phase means of rank 0, the
    /// per-layer backward times scaled to sum to the backward phase (the
    /// phase also holds what falls between layers), and the report's buckets.
    public init(report r: RunReport) throws {
        guard r.complete else {
            throw TrainerError.usage("model: the profile is marked incomplete (\(r.note ?? "no reason recorded")); profile a run that ends by itself")
        }
        guard r.ranks == 1 else {
            throw TrainerError.usage("model: the profile has \(r.ranks) ranks; it must be a one-rank run (vgg-dp --report FILE without mpirun, or -n 1), so that no communication is in its times")
        }
        guard r.mode != .forward else {
            throw TrainerError.usage("model: the profile is a forward-only run; profile --mode train (or forward-backward)")
        }
        guard let rank = r.perRank.first, rank.stepSeconds.mean > 0 else {
            throw TrainerError.usage("model: the profile has no timed steps")
        }
        self = try ComputeProfile.measured(
            batchPerRank: r.batchPerRank, data: rank.data, forward: rank.forward, backwardPhase: rank.backward,
            optimizer: rank.optimizer, layerBackward: r.layers.map(\.backwardSeconds), buckets: r.buckets.map(\.bucket),
            overlap: r.overlap)
    }

    /// A profile from measured phase means, per-layer backward times (forward
    /// order) and the bucket plan (layer indices into those times). The layer
    /// times are scaled to sum to the backward phase, which also holds what
    /// falls between layers.
    public static func measured(batchPerRank: Int, data: Double, forward: Double, backwardPhase: Double, optimizer: Double,
                                layerBackward: [Double], buckets: [Bucket], overlap: Bool) throws -> ComputeProfile {
        guard !layerBackward.isEmpty else {
            throw TrainerError.usage("model: the profile has no per-layer backward times")
        }
        guard !buckets.isEmpty else {
            throw TrainerError.usage("model: the profile has no bucket plan")
        }
        let sum = layerBackward.reduce(0, +)
        let layers = sum > 0 ? layerBackward.map { $0 * backwardPhase / sum }
            : [Double](repeating: backwardPhase / Double(layerBackward.count), count: layerBackward.count)
        let profile = ComputeProfile(batchPerRank: batchPerRank, data: data, forward: forward, layerBackward: layers,
                                     optimizer: optimizer, buckets: buckets, overlap: overlap)
        try profile.validate()
        return profile
    }

    /// The same compute with another bucket plan (layer indices as in the profile).
    public func with(buckets: [Bucket]) -> ComputeProfile {
        var p = self
        p.buckets = buckets
        return p
    }
}
