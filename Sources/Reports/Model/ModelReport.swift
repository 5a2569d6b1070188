import Foundation
import Vocabulary

/// The Markdown `vgg-dp model` prints: what the prediction rests on (the
/// profile, the link, the buckets), the predicted table, measured runs next
/// to their prediction, and links to the plots. Pure: the command gathers the
/// inputs and prints the text.
public struct ModelReport: Sendable {
    /// The profile as the user named it, and what it holds.
    public var profilePath: String
    public var profile: RunReport
    public var compute: ComputeProfile
    public var cost: LinkCost
    /// Where α and β come from, in words.
    public var costSource: String
    public var study: ModelStudy
    public var computeScale: Double
    /// The bucket size the plan was rebuilt at; nil: the profile's plan.
    public var rebuiltBucketMb: Double?
    /// Measured runs to set against the prediction, paths as the user named them.
    public var measured: [LoadedRun]
    /// The layout predicted; nil: one rank per host, the profile's overlap.
    public var layout: ModelLayout? = nil

    public init(profilePath: String, profile: RunReport, compute: ComputeProfile, cost: LinkCost, costSource: String,
                study: ModelStudy, computeScale: Double, rebuiltBucketMb: Double?, measured: [LoadedRun],
                layout: ModelLayout? = nil) {
        self.profilePath = profilePath
        self.profile = profile
        self.compute = compute
        self.cost = cost
        self.costSource = costSource
        self.study = study
        self.computeScale = computeScale
        self.rebuiltBucketMb = rebuiltBucketMb
        self.measured = measured
        self.layout = layout
    }

    /// The document; `plots` are linked as given (paths relative to the
    /// Markdown file).
    public func markdown(plots: [ScalingStudy.Plot] = []) -> String {
        let r = profile
        func ms(_ x: Double) -> String { Text.fixed(x * 1000, 2) }
        var out: [String] = []
        let batch = study.kind == .strong ? "global batch \(study.baseline.globalBatch)" : "batch \(study.baseline.batchPerRank) per rank"
        out.append("# Model: \(study.kind.rawValue) scaling of \(r.model.rawValue) at \(r.imageSize)×\(r.imageSize), \(batch)")
        out.append("")
        let one = ScalingModel.step(profile: compute, cost: cost, ranks: 1, batchPerRank: compute.batchPerRank)
        out.append("- profile: \(profilePath): \(r.model.rawValue) \(r.imageSize)×\(r.imageSize), width ÷\(r.widthDivisor), \(r.classes) classes, mode \(r.mode.rawValue), batch \(r.batchPerRank), "
                   + "\(r.blasThreads) BLAS thread(s) (OpenBLAS \(r.blasCore)) on \(r.hosts.first ?? "?"); measured step \(ms(r.stepSeconds.mean)) ms, "
                   + "modelled one-rank step \(ms(one.step)) ms = data \(ms(one.data)) + forward \(ms(one.forward)) + backward \(ms(one.backward)) + optimizer \(ms(one.update))")
        if computeScale != 1 { out.append("- compute scale: every compute time × \(computeScale)") }
        out.append("- network: \(costSource)")
        let sizes = compute.buckets.map { Text.fixed(Double($0.bytes) / 1_048_576, 1) }.joined(separator: " ")
        out.append("- buckets: \(compute.buckets.count)\(rebuiltBucketMb.map { " (rebuilt at \($0) MiB)" } ?? " (the profile's plan, \(r.bucketMb) MiB)"), MiB: \(sizes); "
                   + (compute.overlap ? "allreduce overlapped with backward" : "allreduce after backward"))
        out.append("- T_allreduce(bytes) = 2(N−1)·α + 2·((N−1)/N)·bytes·β per bucket, one after another on one communication thread; "
                   + "compute scales linearly with the batch per rank")
        if let gamma = cost.hostCpuPerByte {
            out.append("- host CPU of the link: \(Text.fixed(gamma * 1e9, 3)) ns per byte a host's link carries; overlapped across hosts, "
                       + "what the link moves during backward takes that CPU from the host's idle cores, then from backward, spread over the host's cores")
        }
        if let l = layout {
            out.append("- layout: \(l.ranksPerHost) rank(s) per host × \(l.threadsPerRank) thread(s), "
                       + (l.cores.map { "\($0) cores per host" } ?? "enough cores for every thread")
                       + ", --exchange \(l.exchange.rawValue)" + (l.overlap.map { $0 ? ", --overlap" : ", --no-overlap" } ?? "")
                       + "; per row the exchange and overlap the trainer would pick (host-shared reduces within a host at the memory bandwidth of the profile's optimizer pass)")
            for c in l.coRuns {
                let own = c.compute.stepSeconds, base = compute.stepSeconds
                out.append("- co-run: \(c.source): \(c.copies) copies at once on \(c.machine.cores) cores (\(Text.fixed(c.machine.threadsPerCore, 2)) threads per core); compute \(ms(own)) ms per step, "
                           + "×\(Text.fixed(base > 0 ? own / base : 0, 2)) the profile's; used for hosts of 2 or more ranks at that load")
            }
        } else {
            out.append("- one rank per host")
        }
        out.append("")
        out += study.markdownTable()
        out.append("")
        out.append("step: predicted time per step; compute: data + forward + backward + optimizer; allreduce: the buckets' allreduce time, hidden or not; "
                   + "exposed: what the compute thread waits for after backward; efficiency: "
                   + (study.kind == .strong ? "T_b·N_b / (N·T_N)" : "T_b / T_N") + " against the first row.")
        if !study.skipped.isEmpty {
            out.append("")
            let why = study.kind == .strong ? "the global batch \(study.baseline.globalBatch) does not divide, or the ranks do not fill whole hosts" : "the ranks do not fill whole hosts"
            out.append("Left out (\(why)): \(study.skipped.map(String.init).joined(separator: ", ")) ranks.")
        }
        if !measured.isEmpty {
            out += measuredSection()
        }
        if !plots.isEmpty {
            out.append("")
            out.append("## Plots")
            out.append("")
            out.append("Drawn by scripts/plot.py from the model's CSV: its \"measured\" lines are the model's predictions.")
            for p in plots {
                out.append("")
                out.append("![\(p.title)](\(p.path))")
            }
        }
        return out.joined(separator: "\n") + "\n"
    }

    /// What a measured run's layout was, as the model takes it.
    /// `cores`: the cores per host given for the prediction, which win over
    /// the run's own record (simulated hosts on one machine share its cores,
    /// and each records them all).
    static func layout(of m: RunReport, cores: Int? = nil, coRuns: [CoRunProfile] = []) -> ModelLayout {
        let hosts = max(1, Set(m.hosts).count)
        return ModelLayout(ranksPerHost: max(1, m.ranks / hosts), threadsPerRank: m.blasThreads, cores: cores ?? m.coresPerHost,
                           exchange: m.exchange ?? .allreduce, overlap: m.overlap, coRuns: coRuns)
    }

    /// Each measured run against the prediction at its rank count and batch.
    func measuredSection() -> [String] {
        let r = profile
        func ms(_ x: Double) -> String { Text.fixed(x * 1000, 2) }
        var out = ["", "## Measured vs predicted", ""]
        var rows: [[String]] = []
        var notes: [String] = []
        for run in measured {
            let (path, m) = (run.path, run.report)
            let p = ScalingModel.step(profile: compute, cost: cost, ranks: m.ranks, batchPerRank: m.batchPerRank,
                                      computeScale: computeScale, layout: Self.layout(of: m, cores: layout?.cores, coRuns: layout?.coRuns ?? []))
            let err = m.stepSeconds.mean > 0 ? (p.step - m.stepSeconds.mean) / m.stepSeconds.mean : 0
            let ran = (m.exchange ?? .allreduce).rawValue + (m.overlap ? ", overlapped" : "")
            rows.append([run.name, String(m.ranks), String(m.batchPerRank), String(Set(m.hosts).count), ran,
                         p.coRunCopies.map { "co-run \($0)" } ?? "profile", ms(m.stepSeconds.mean), ms(p.step), (err >= 0 ? "+" : "") + Text.fixed(100 * err, 1) + "%",
                         ms(m.allreduceSecondsPerStep), ms(p.allreduce), ms(m.exposedSecondsPerStep), ms(p.exposed)])
            if m.model != r.model || m.imageSize != r.imageSize || m.widthDivisor != r.widthDivisor || m.classes != r.classes {
                notes.append("\(path) is \(m.model.rawValue) \(m.imageSize)×\(m.imageSize) ÷\(m.widthDivisor), the profile \(r.model.rawValue) \(r.imageSize)×\(r.imageSize) ÷\(r.widthDivisor)")
            }
            if !m.complete { notes.append("\(path) is marked incomplete (\(m.note ?? "no reason recorded")): its times cover only the steps it ran") }
            if m.bucketMb != r.bucketMb && rebuiltBucketMb == nil { notes.append("\(path) used \(m.bucketMb) MiB buckets, the profile \(r.bucketMb)") }
        }
        out += Markdown.table(["run", "ranks", "batch/rank", "hosts", "exchange", "compute", "measured step ms", "predicted ms", "error",
                               "measured allreduce ms", "predicted", "measured exposed ms", "predicted"], rows, leftColumns: 1)
        out.append("")
        out.append("Each run is predicted for its own layout: its ranks per host, threads, the cores its host had (or --cores-per-host when given), and the exchange and overlap it ran. "
                   + "compute: the profile's, or the co-run profile of that many copies; error: (predicted − measured) / measured step time; measured times are the slowest rank's (step) and the ranks' mean (allreduce, exposed).")
        for n in notes { out.append("- note: \(n)") }
        return out
    }
}
