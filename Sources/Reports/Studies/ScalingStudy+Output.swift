import Foundation
import Vocabulary

extension ScalingStudy {
    // MARK: - CSV

    /// Columns of the scaling CSV (strong and weak), in order.
    public static let scalingColumns = [
        "ranks", "batch_per_rank", "global_batch", "hosts", "blas_threads",
        "step_mean_s", "step_sd_s", "images_per_second", "speedup", "efficiency",
        "exposed_share", "allreduce_share", "straggler_ratio",
        "data_s", "forward_s", "backward_s", "optimizer_s", "allreduce_s", "exposed_s",
        "kind", "model", "image_size", "mode", "file",
    ]

    /// Columns of the sweep CSV: the notebook's numbers.
    public static let sweepColumns = ["batch_size", "mean", "sd", "images_per_second"]

    /// One header line, then one line per point. Seconds unrounded; phase
    /// columns are per-rank means averaged over ranks. A sweep has its own
    /// four columns (batch_size, mean, sd, images_per_second).
    public func csv() -> String {
        if kind == .sweep {
            return CSV.document(header: ScalingStudy.sweepColumns, rows: points.map { p in
                [String(p.batchPerRank), num(p.stepMean), num(p.stepSD), num(p.imagesPerSecond)]
            })
        }
        return CSV.document(header: ScalingStudy.scalingColumns, rows: zip(points, runs).map { p, run in
            let r = run.report
            return [
                String(p.ranks), String(p.batchPerRank), String(p.globalBatch), String(p.hostCount), String(p.blasThreads),
                num(p.stepMean), num(p.stepSD), num(p.imagesPerSecond), num(p.speedup), p.efficiency.map(num) ?? "",
                num(p.exposedShare), num(p.allreduceShare), num(p.stragglerRatio),
                num(p.data), num(p.forward), num(p.backward), num(p.optimizer), num(p.allreduce), num(p.exposed),
                kind.rawValue, r.model.rawValue, String(r.imageSize), r.mode.rawValue, p.file,
            ]
        })
    }

    /// A number as CSV text: shortest round-trip decimal, no exponent surprises for readers.
    func num(_ x: Double) -> String { x.isFinite ? "\(x)" : "" }

    // MARK: - Markdown

    /// The report: a header naming what was run, a table, the plots (when
    /// given, paths relative to the Markdown file), notes and the runs' command lines.
    public func markdown(plots: [Plot] = []) -> String {
        let b = baseline.report
        var out: [String] = []
        let what = "\(values { $0.model.rawValue }) at \(values { "\($0.imageSize)×\($0.imageSize)" }), mode \(values { $0.mode.rawValue })"
        switch kind {
        case .strong: out.append("# Strong scaling: \(what)")
        case .weak: out.append("# Weak scaling: \(what)")
        case .sweep: out.append("# Batch-size sweep: \(what)")
        }
        out.append("")
        var header: [String] = []
        header.append("model: \(values { $0.model.rawValue }), image size \(values { "\($0.imageSize)×\($0.imageSize)" }), width ÷\(values { "\($0.widthDivisor)" }), \(values { "\($0.classes)" }) classes, \(values { Text.grouped($0.parameters) }) parameters")
        header.append("mode: \(values { $0.mode.rawValue })" + (b.objective.map { ", objective \($0)" } ?? "")
                      + "; warm-up \(values { "\($0.warmup)" }), timed steps \(values { "\($0.steps)" })")
        switch kind {
        case .strong:
            header.append("kind: strong scaling (global batch \(values { "\($0.globalBatch)" }) split over the ranks); efficiency = T_b·N_b / (N·T_N)")
        case .weak:
            header.append("kind: weak scaling (batch \(values { "\($0.batchPerRank)" }) per rank); efficiency = T_b / T_N")
        case .sweep:
            header.append("kind: batch-size sweep at \(values { "\($0.ranks)" }) rank(s)")
        }
        header.append("baseline: \(baseline.name) (\(b.ranks) rank\(b.ranks == 1 ? "" : "s"), batch \(b.batchPerRank) per rank); T = the slowest rank's mean step time")
        header.append("hosts: \(hostsLine())")
        header.append("BLAS: OpenBLAS \(values { $0.blasCore }), threads per rank \(values { "\($0.blasThreads)" })"
                      + (runs.contains { $0.report.openblasCoretype != nil } ? ", OPENBLAS_CORETYPE \(values { $0.openblasCoretype ?? "unset" })" : "")
                      + "; build: \(values { $0.blasConfig })")
        header.append("MPI: \(values { $0.mpiLibrary }), thread level \(values { $0.mpiThreadLevel })")
        if kind != .sweep || runs.contains(where: { $0.report.ranks > 1 }) {
            header.append("gradients: \(values { $0.overlap ? "allreduce overlapped with backward" : "allreduce after backward" }), buckets of \(values { "\($0.bucketMb)" }) MiB")
        }
        out += header.map { "- " + $0 }
        out.append("")
        out += kind == .sweep ? sweepTable() : scalingTable()
        out.append("")
        if kind == .sweep {
            out.append("mean ± sd: seconds per batch over the timed steps (population sd, as the notebook); ms/image = mean / batch; "
                       + "× smallest: mean over the smallest batch's mean.")
        } else {
            out.append("step: the slowest rank's mean ± sd per step; speedup: images/s over the baseline's; "
                       + "exposed: communication the compute thread waited for, share of the step; "
                       + "allreduce: time inside allreduce (hidden or not), share of the step; "
                       + "straggler: slowest rank's mean / mean of the ranks' means.")
        }
        if !plots.isEmpty {
            out.append("")
            out.append("## Plots")
            for p in plots {
                out.append("")
                out.append("![\(p.title)](\(Markdown.link(p.path)))")
            }
        }
        out += Markdown.bulletSection("Notes", notes)
        out.append("")
        out.append("## Runs")
        out.append("")
        out.append("Command lines as rank 0 saw them (the mpirun around them is not recorded):")
        out.append("")
        out.append("```")
        for r in runs {
            out.append("# \(r.name): \(r.report.ranks) rank(s) on \(Set(r.report.hosts).sorted().joined(separator: ", ")), started \(r.report.startedAt)")
            out.append(r.report.command.map(Markdown.shellQuote).joined(separator: " "))
        }
        out.append("```")
        return out.joined(separator: "\n") + "\n"
    }

    func scalingTable() -> [String] {
        func ms(_ x: Double) -> String { Text.fixed(x * 1000, 2) }
        func pct(_ x: Double) -> String { Text.fixed(100 * x, 1) + "%" }
        let header = ["ranks", "batch/rank", "global batch", "hosts", "BLAS threads", "step ms (mean ± sd)", "images/s",
                      "speedup", "efficiency", "exposed comm", "allreduce", "straggler"]
        let rows = points.map { p in
            [String(p.ranks) + (p.complete ? "" : " (incomplete)"), String(p.batchPerRank), String(p.globalBatch), String(p.hostCount), String(p.blasThreads),
             "\(ms(p.stepMean)) ± \(ms(p.stepSD))", Text.fixed(p.imagesPerSecond, 2), Text.fixed(p.speedup, 2) + "×",
             p.efficiency.map(pct) ?? "-", pct(p.exposedShare), pct(p.allreduceShare), Text.fixed(p.stragglerRatio, 3)]
        }
        return Markdown.table(header, rows, leftColumns: 0)
    }

    func sweepTable() -> [String] {
        let smallest = points.first?.stepMean ?? 0
        let header = ["batch size", "ranks", "mean ± sd (s / batch)", "ms / image", "images/s", "× smallest"]
        let rows = points.map { p in
            ["\(p.batchPerRank)" + (p.complete ? "" : " (incomplete)"), "\(p.ranks)", "\(Text.fixed(p.stepMean, 4)) ± \(Text.fixed(p.stepSD, 4))",
             Text.fixed(p.batchPerRank > 0 ? 1000 * p.stepMean / Double(p.batchPerRank) : 0, 2),
             Text.fixed(p.imagesPerSecond, 2), smallest > 0 ? Text.fixed(p.stepMean / smallest, 2) : "-"]
        }
        return Markdown.table(header, rows, leftColumns: 0)
    }

    /// The runs' value of `f`: one value when they agree, else each run's, by rank count.
    func values(_ f: (RunReport) -> String) -> String {
        let all = runs.map { f($0.report) }
        if Set(all).count <= 1 { return all.first ?? "" }
        let key: (RunReport) -> String = kind == .sweep ? { "batch \($0.batchPerRank)" } : { "\($0.ranks) rank\($0.ranks == 1 ? "" : "s")" }
        var seen = Set<String>()
        var parts: [String] = []
        for r in runs {
            let part = "\(f(r.report)) (\(key(r.report)))"
            if seen.insert(part).inserted { parts.append(part) }
        }
        return parts.joined(separator: ", ")
    }

    func hostsLine() -> String {
        let sets = runs.map { Set($0.report.hosts) }
        let union = sets.reduce(Set<String>()) { $0.union($1) }.sorted()
        let ranksPerHost = runs.map { r -> String in
            var count: [String: Int] = [:]
            for h in r.report.hosts { count[h, default: 0] += 1 }
            return count.keys.sorted().map { "\($0)×\(count[$0]!)" }.joined(separator: " ")
        }
        var s = "\(union.joined(separator: ", ")) (\(union.count) host\(union.count == 1 ? "" : "s")\(runs.count > 1 && sets.contains { $0.count != union.count } ? " in all" : ""))"
        if Set(ranksPerHost).count > 1 || runs.count == 1 {
            s += "; ranks per host: " + zip(runs, ranksPerHost).map { "\($0.report.ranks) rank\($0.report.ranks == 1 ? "" : "s"): \($1)" }.joined(separator: "; ")
        }
        return s
    }
}

