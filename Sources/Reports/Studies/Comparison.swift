import Foundation
import Vocabulary

/// One run over a matching run: images/s and peak RSS, this run's over the other's.
public struct RunRatio: Equatable, Sendable {
    /// File name of the run compared against.
    public var against: String
    public var imagesPerSecond: Double
    public var peakRss: Double

    public init(against: String, imagesPerSecond: Double, peakRss: Double) {
        self.against = against
        self.imagesPerSecond = imagesPerSecond
        self.peakRss = peakRss
    }
}

/// One row of a comparison: one run, and its ratios to the matching runs.
public struct ComparisonRow: Equatable, Sendable {
    public var file: String
    public var tool: String
    /// What ran the layers: OpenBLAS core and OPENBLAS_CORETYPE for vgg-dp, the report's blas_core otherwise.
    public var kernel: String
    /// The report's mode; for a multi-rank run "(host-shared)" or, for the
    /// allreduce exchange without overlap, "(no overlap)" added.
    public var mode: String
    public var batchPerRank: Int
    public var globalBatch: Int
    public var threads: Int
    public var ranks: Int
    public var warmup: Int
    public var steps: Int
    /// Step time of the slowest rank, seconds.
    public var stepMedian: Double
    public var stepMean: Double
    public var stepSD: Double
    public var imagesPerSecond: Double
    public var gflopsPerSecond: Double
    /// Largest rank's peak resident set, MiB.
    public var peakRssMiB: Double
    /// Against the TensorFlow and the PyTorch run of the same mode, batch per rank, threads and ranks.
    public var vsTensorFlow: RunRatio?
    public var vsPyTorch: RunRatio?
    /// Against the same tool and kernel on one rank (same mode, batch per rank,
    /// threads per rank); only for runs on more than one rank.
    public var vsOneRank: RunRatio?
}

/// Runs of different tools side by side (vgg-dp, and the TensorFlow and
/// PyTorch baselines of scripts/baselines/, which write the same report
/// fields): pure values, rendered as Markdown and CSV by
/// `vgg-dp report --kind compare`.
public struct Comparison: Sendable {
    /// The tools other runs are measured against, in column order.
    public static let tensorflow = "tensorflow"
    public static let pytorch = "pytorch"

    /// The runs in row order: by mode (forward-backward, forward, train), batch
    /// per rank, threads, ranks, then tool (vgg-dp, tensorflow, pytorch), kernel, start time, file.
    public let runs: [LoadedRun]
    public let rows: [ComparisonRow]
    /// Warnings about the inputs (different networks, incomplete runs, runs with nothing to compare to).
    public let notes: [String]

    public init(runs unsorted: [LoadedRun]) throws {
        guard !unsorted.isEmpty else { throw TrainerError.usage("report: no run reports given") }
        let runs = unsorted.sorted(by: Comparison.rowOrder)
        var notes: [String] = []
        var rows: [ComparisonRow] = []
        for run in runs {
            let r = run.report
            var row = ComparisonRow(
                file: run.name, tool: r.tool, kernel: Comparison.kernel(r),
                mode: Comparison.modeLabel(r),
                batchPerRank: r.batchPerRank, globalBatch: r.globalBatch, threads: r.blasThreads, ranks: r.ranks,
                warmup: r.warmup, steps: r.steps,
                stepMedian: r.stepSeconds.median, stepMean: r.stepSeconds.mean, stepSD: r.stepSeconds.sd,
                imagesPerSecond: r.imagesPerSecond, gflopsPerSecond: r.gflopsPerSecond,
                peakRssMiB: Double(r.peakRssBytes) / 1_048_576)
            for tool in [Comparison.tensorflow, Comparison.pytorch] {
                let candidates = runs.filter { $0.report.tool == tool && Comparison.sameCase($0.report, r) }
                guard let base = candidates.first else { continue }
                if candidates.count > 1 && r.tool == tool && base.path == run.path {
                    notes.append("\(candidates.count) \(tool) runs of \(Comparison.describeCase(r)): ratios use \(base.name)")
                }
                let ratio = Comparison.ratio(r, base.report, against: base.name)
                if tool == Comparison.tensorflow { row.vsTensorFlow = ratio } else { row.vsPyTorch = ratio }
            }
            if r.ranks > 1, let one = runs.first(where: {
                $0.report.ranks == 1 && $0.report.tool == r.tool && Comparison.kernel($0.report) == row.kernel
                    && $0.report.mode == r.mode && $0.report.batchPerRank == r.batchPerRank
                    && $0.report.blasThreads == r.blasThreads
            }) {
                row.vsOneRank = Comparison.ratio(r, one.report, against: one.name)
            }
            rows.append(row)
        }
        notes += Comparison.inputNotes(runs, rows: rows)
        self.runs = runs
        self.rows = rows
        self.notes = notes
    }

    // MARK: - Matching

    /// Two runs of the same case: mode, batch per rank, threads per rank, ranks.
    public static func sameCase(_ a: RunReport, _ b: RunReport) -> Bool {
        a.mode == b.mode && a.batchPerRank == b.batchPerRank && a.blasThreads == b.blasThreads && a.ranks == b.ranks
    }

    /// "forward-backward, batch 16, 1 thread, 1 rank".
    public static func describeCase(_ r: RunReport) -> String {
        let batch = r.ranks > 1 ? "batch \(r.batchPerRank) per rank" : "batch \(r.batchPerRank)"
        let threads = "\(r.blasThreads) thread\(r.blasThreads == 1 ? "" : "s")" + (r.ranks > 1 ? " per rank" : "")
        return "\(r.mode.rawValue), \(batch), \(threads), \(r.ranks) rank\(r.ranks == 1 ? "" : "s")"
    }

    /// images/s and peak RSS of `run` over those of `base` (0 when the base has none).
    public static func ratio(_ run: RunReport, _ base: RunReport, against: String) -> RunRatio {
        RunRatio(against: against,
                 imagesPerSecond: base.imagesPerSecond > 0 ? run.imagesPerSecond / base.imagesPerSecond : 0,
                 peakRss: base.peakRssBytes > 0 ? Double(run.peakRssBytes) / Double(base.peakRssBytes) : 0)
    }

    /// "train", "train (no overlap)" or "train (host-shared)".
    static func modeLabel(_ r: RunReport) -> String {
        guard r.ranks > 1 else { return r.mode.rawValue }
        if r.exchange == .hostShared { return "\(r.mode.rawValue) (host-shared)" }
        return r.overlap ? r.mode.rawValue : "\(r.mode.rawValue) (no overlap)"
    }

    /// vgg-dp: "OpenBLAS Haswell, OPENBLAS_CORETYPE=Haswell, conv auto" (the
    /// core that ran and how it was chosen: set in the environment, or unset
    /// and left to OpenBLAS, or unset and chosen by vgg-dp, see BLASKernel);
    /// other tools: their blas_core.
    public static func kernel(_ r: RunReport) -> String {
        guard r.tool == "vgg-dp" else { return r.blasCore }
        var s = "OpenBLAS \(r.blasCore), " + (r.openblasCoretype.map { "OPENBLAS_CORETYPE=\($0)" } ?? "OPENBLAS_CORETYPE unset")
        if r.openblasCoretype == nil && r.blasKernelChoice != nil { s += " (chosen by vgg-dp)" }
        if let conv = r.conv { s += ", conv \(conv.rawValue)" }
        return s
    }

    static let modeOrder = ["forward-backward", "forward", "train"]
    static let toolOrder = ["vgg-dp", tensorflow, pytorch]

    static func rowOrder(_ a: LoadedRun, _ b: LoadedRun) -> Bool {
        let (x, y) = (a.report, b.report)
        func index(_ list: [String], _ s: String) -> Int { list.firstIndex(of: s) ?? list.count }
        if x.mode != y.mode {
            let (i, j) = (index(modeOrder, x.mode.rawValue), index(modeOrder, y.mode.rawValue))
            return i != j ? i < j : x.mode.rawValue < y.mode.rawValue
        }
        if x.batchPerRank != y.batchPerRank { return x.batchPerRank < y.batchPerRank }
        if x.blasThreads != y.blasThreads { return x.blasThreads < y.blasThreads }
        if x.ranks != y.ranks { return x.ranks < y.ranks }
        if x.tool != y.tool {
            let (i, j) = (index(toolOrder, x.tool), index(toolOrder, y.tool))
            return i != j ? i < j : x.tool < y.tool
        }
        let (kx, ky) = (kernel(x), kernel(y))
        if kx != ky { return kx < ky }
        if x.startedAt != y.startedAt { return x.startedAt < y.startedAt }
        return a.path < b.path
    }

    /// Notes for runs that should not be compared (different networks),
    /// incomplete or empty runs, and single-rank runs of a mode TensorFlow ran
    /// that no TensorFlow run matches.
    static func inputNotes(_ runs: [LoadedRun], rows: [ComparisonRow]) -> [String] {
        var notes: [String] = []
        let networks = runs.map { "\($0.report.model.rawValue) \($0.report.imageSize)×\($0.report.imageSize), width ÷\($0.report.widthDivisor), \($0.report.classes) classes" }
        if Set(networks).count > 1 {
            let each = zip(runs, networks).map { "\($0.name): \($1)" }.joined(separator: "; ")
            notes.append("the network differs between runs (\(each)): images/s compare unequal work")
        }
        for (run, row) in zip(runs, rows) {
            let r = run.report
            if !r.complete { notes.append(ScalingStudy.incompleteNote(run)) }
            if r.schema != 1 { notes.append("\(run.name) has report schema \(r.schema); this tool reads schema 1") }
            if r.stepSeconds.mean <= 0 { notes.append("\(run.name) has no timed steps (step mean 0)") }
            // A run TensorFlow could have matched (TensorFlow ran this mode) but did not.
            let tensorflowModes = Set(runs.filter { $0.report.tool == tensorflow }.map(\.report.mode))
            if r.ranks == 1 && r.tool != tensorflow && r.tool != pytorch && tensorflowModes.contains(r.mode) && row.vsTensorFlow == nil {
                notes.append("no tensorflow run of \(describeCase(r)) to compare \(run.name) with")
            }
        }
        return notes
    }

    // MARK: - CSV

    /// Columns of the comparison CSV, in order.
    public static let columns = [
        "tool", "kernel", "mode", "batch_per_rank", "global_batch", "threads", "ranks", "warmup", "steps",
        "step_median_s", "step_mean_s", "step_sd_s", "images_per_second", "gflops_per_second", "peak_rss_mib",
        "images_per_second_vs_tensorflow", "peak_rss_vs_tensorflow",
        "images_per_second_vs_pytorch", "peak_rss_vs_pytorch", "images_per_second_vs_one_rank",
        "blas_core", "openblas_coretype", "model", "image_size", "file",
    ]

    /// One header line, then one line per row; numbers unrounded, an empty
    /// field where there is no matching run.
    public func csv() -> String {
        func num(_ x: Double) -> String { x.isFinite ? "\(x)" : "" }
        return CSV.document(header: Comparison.columns, rows: zip(rows, runs).map { row, run in
            let r = run.report
            return [
                row.tool, row.kernel, row.mode, String(row.batchPerRank), String(row.globalBatch), String(row.threads),
                String(row.ranks), String(row.warmup), String(row.steps),
                num(row.stepMedian), num(row.stepMean), num(row.stepSD), num(row.imagesPerSecond),
                num(row.gflopsPerSecond), num(row.peakRssMiB),
                row.vsTensorFlow.map { num($0.imagesPerSecond) } ?? "", row.vsTensorFlow.map { num($0.peakRss) } ?? "",
                row.vsPyTorch.map { num($0.imagesPerSecond) } ?? "", row.vsPyTorch.map { num($0.peakRss) } ?? "",
                row.vsOneRank.map { num($0.imagesPerSecond) } ?? "",
                r.blasCore, r.openblasCoretype ?? "", r.model.rawValue, String(r.imageSize), row.file,
            ]
        })
    }

    // MARK: - Markdown

    /// The report: what was run, the table, the ratios in words, notes, and
    /// the runs' command lines.
    public func markdown() -> String {
        var out: [String] = []
        let tools = orderedTools()
        out.append("# Comparison: \(values { $0.model.rawValue }) at \(values { "\($0.imageSize)×\($0.imageSize)" }), \(tools.joined(separator: " vs "))")
        out.append("")
        let first = runs[0].report
        out.append("- model: \(values { $0.model.rawValue }), image size \(values { "\($0.imageSize)×\($0.imageSize)" }), \(values { "\($0.classes)" }) classes, \(Text.grouped(first.parameters)) parameters")
        out.append("- runs: " + tools.map { t in "\(t) \(runs.filter { $0.report.tool == t }.count)" }.joined(separator: ", ")
                   + "; hosts: \(Set(runs.flatMap(\.report.hosts)).sorted().joined(separator: ", "))")
        out.append("- images/s = global batch / mean step (slowest rank); GFLOP/s counts the same FLOPs per image for every tool "
                   + "(\(Text.grouped(first.forwardFlopsPerImage)) forward, 3× that less the first layer's input gradient for forward-backward), "
                   + "so a tool doing less arithmetic (Winograd) shows more than it executes")
        out.append("- ratios: this row's images/s (peak RSS) over the matching run's, same mode, batch per rank, threads per rank and ranks; "
                   + "× 1 rank: over the same tool and kernel on one rank")
        out.append("")
        out += table()
        let ratios = ratioLines()
        out += Markdown.bulletSection("Ratios", ratios)
        out += Markdown.bulletSection("Notes", notes)
        out.append("")
        out.append("## Runs")
        out.append("")
        out.append("```")
        for (row, r) in zip(rows, runs) {
            out.append("# \(r.name): \(row.tool), \(r.report.blasCore); \(r.report.blasConfig); started \(r.report.startedAt)")
            out.append(r.report.command.map(Markdown.shellQuote).joined(separator: " "))
        }
        out.append("```")
        return out.joined(separator: "\n") + "\n"
    }

    /// The side-by-side table: one row per run.
    public func table() -> [String] {
        func times(_ x: Double?) -> String { x.map { Text.fixed($0, 2) + "×" } ?? "-" }
        let header = ["tool", "kernel", "mode", "batch/rank", "threads", "ranks", "warm-up+steps",
                      "s/batch median", "s/batch mean ± sd", "images/s", "GFLOP/s", "peak RSS MiB",
                      "images/s vs TF", "RSS vs TF", "images/s vs PyTorch", "RSS vs PyTorch", "× 1 rank"]
        let body = rows.map { r in
            [r.tool, r.kernel, r.mode, String(r.batchPerRank), String(r.threads), String(r.ranks), "\(r.warmup)+\(r.steps)",
             Text.fixed(r.stepMedian, 3), "\(Text.fixed(r.stepMean, 3)) ± \(Text.fixed(r.stepSD, 3))",
             Text.fixed(r.imagesPerSecond, 2), Text.fixed(r.gflopsPerSecond, 1), Text.grouped(Int(r.peakRssMiB.rounded())),
             times(r.vsTensorFlow?.imagesPerSecond), times(r.vsTensorFlow?.peakRss),
             times(r.vsPyTorch?.imagesPerSecond), times(r.vsPyTorch?.peakRss), times(r.vsOneRank?.imagesPerSecond)]
        }
        return Markdown.table(header, body, leftColumns: 3)
    }

    /// The ratios in words: every run that is not TensorFlow's against the
    /// matching TensorFlow run, every run that is neither against the
    /// matching PyTorch run, and every multi-rank run against one rank.
    public func ratioLines() -> [String] {
        var lines: [String] = []
        let byName = Dictionary(runs.map { ($0.name, $0.report) }, uniquingKeysWith: { a, _ in a })
        func rss(_ r: RunReport) -> String { Text.grouped(r.peakRssBytes >> 20) + " MiB" }
        func who(_ r: RunReport) -> String { "\(r.tool) [\(Comparison.kernel(r))]" }
        for (row, run) in zip(rows, runs) {
            let r = run.report
            var against: [(String, RunRatio)] = []
            if row.tool != Comparison.tensorflow, let t = row.vsTensorFlow { against.append((Comparison.tensorflow, t)) }
            if row.tool != Comparison.tensorflow && row.tool != Comparison.pytorch, let p = row.vsPyTorch {
                against.append((Comparison.pytorch, p))
            }
            for (_, ratio) in against {
                guard let base = byName[ratio.against] else { continue }
                lines.append("\(Comparison.describeCase(r)): \(who(r)) \(Text.fixed(r.imagesPerSecond, 2)) images/s vs "
                             + "\(who(base)) \(Text.fixed(base.imagesPerSecond, 2)) = **\(Text.fixed(ratio.imagesPerSecond, 2))×**; "
                             + "peak RSS \(rss(r)) vs \(rss(base)) = \(Text.fixed(ratio.peakRss, 2))×")
            }
            if let one = row.vsOneRank, let base = byName[one.against] {
                lines.append("\(row.mode), batch \(r.batchPerRank) per rank, \(r.blasThreads) thread\(r.blasThreads == 1 ? "" : "s") per rank: "
                             + "\(who(r)) \(r.ranks) ranks \(Text.fixed(r.imagesPerSecond, 2)) images/s vs 1 rank "
                             + "\(Text.fixed(base.imagesPerSecond, 2)) = **\(Text.fixed(one.imagesPerSecond, 2))×** "
                             + "(\(Text.fixed(100 * one.imagesPerSecond / Double(r.ranks), 1))% of \(r.ranks)×)")
            }
        }
        return lines
    }

    /// Tools in column order, then any others by name.
    func orderedTools() -> [String] {
        let present = Set(runs.map(\.report.tool))
        return Comparison.toolOrder.filter(present.contains) + present.subtracting(Comparison.toolOrder).sorted()
    }

    /// The runs' value of `f`: one value when they agree, else each distinct one.
    func values(_ f: (RunReport) -> String) -> String {
        var seen = Set<String>()
        var parts: [String] = []
        for r in runs where seen.insert(f(r.report)).inserted { parts.append(f(r.report)) }
        return parts.joined(separator: " / ")
    }
}
