import Foundation

/// What a set of runs measures.
public enum StudyKind: String, CaseIterable, Sendable {
    /// Same global batch at every rank count: the work is split (time should fall as 1/N).
    case strong
    /// Same batch per rank at every rank count: the work grows with N (time should stay flat).
    case weak
    /// One rank count, batch per rank varies: the notebook's time-per-batch sweep.
    case sweep
}

/// One run read from disk: the file it came from and what it says.
public struct LoadedRun: Sendable {
    public var path: String
    public var report: RunReport

    public init(path: String, report: RunReport) {
        self.path = path
        self.report = report
    }

    /// The file's name without its folder, as the report prints it.
    public var name: String { URL(fileURLWithPath: path).lastPathComponent }
}

/// One row of a study: a run and what it means relative to the baseline run.
public struct StudyPoint: Equatable, Sendable {
    public var file: String
    public var ranks: Int
    public var batchPerRank: Int
    public var globalBatch: Int
    /// Distinct hosts the run's ranks ran on.
    public var hostCount: Int
    public var blasThreads: Int
    /// Step time of the slowest rank (the report's step_seconds), seconds.
    public var stepMean: Double
    public var stepSD: Double
    public var imagesPerSecond: Double
    /// images/s over the baseline's images/s.
    public var speedup: Double
    /// Parallel efficiency (strong: T_b·N_b / (N·T_N); weak: T_b / T_N); nil for a sweep.
    public var efficiency: Double?
    /// exposed_seconds_per_step / step mean: communication the compute thread waited for.
    public var exposedShare: Double
    /// allreduce_seconds_per_step / step mean: communication time, hidden or not.
    public var allreduceShare: Double
    public var stragglerRatio: Double
    /// Per-phase mean seconds per step, averaged over ranks (RunReport.perRank).
    public var data: Double
    public var forward: Double
    public var backward: Double
    public var optimizer: Double
    public var allreduce: Double
    public var exposed: Double
}

/// A scaling study (or batch-size sweep) built from run reports: pure values,
/// rendered as Markdown and CSV by `vgg-dp report`.
public struct ScalingStudy: Sendable {
    /// A plot to link from the Markdown: a title and a path relative to the Markdown file.
    public struct Plot: Equatable, Sendable {
        public var title: String
        public var path: String
        public init(title: String, path: String) {
            self.title = title
            self.path = path
        }
    }

    public let kind: StudyKind
    /// The runs in row order: by rank count (sweep: by batch per rank), then start time, then file name.
    public let runs: [LoadedRun]
    public let points: [StudyPoint]
    /// The run every speedup and efficiency is relative to: the first row.
    public var baseline: LoadedRun { runs[0] }
    /// Warnings about the inputs (mixed models, a kind that does not fit, incomplete runs...).
    public let notes: [String]

    /// Builds the study; `kind` nil detects it (see `detectKind`).
    public init(runs unsorted: [LoadedRun], kind explicit: StudyKind? = nil) throws {
        guard !unsorted.isEmpty else { throw TrainerError.usage("report: no run reports given") }
        let reports = unsorted.map(\.report)
        var notes: [String] = []
        let kind: StudyKind
        if let explicit {
            kind = explicit
            notes += ScalingStudy.mismatchNotes(reports, kind: explicit)
        } else {
            let detected = try ScalingStudy.detectKind(reports)
            kind = detected.kind
            if let n = detected.note { notes.append(n) }
        }
        let runs = unsorted.sorted { a, b in
            let (x, y) = (a.report, b.report)
            if kind == .sweep {
                if x.batchPerRank != y.batchPerRank { return x.batchPerRank < y.batchPerRank }
                if x.ranks != y.ranks { return x.ranks < y.ranks }
            } else {
                if x.ranks != y.ranks { return x.ranks < y.ranks }
                if x.batchPerRank != y.batchPerRank { return x.batchPerRank < y.batchPerRank }
            }
            if x.startedAt != y.startedAt { return x.startedAt < y.startedAt }
            return a.path < b.path
        }
        notes += ScalingStudy.consistencyNotes(runs)
        let base = runs[0].report
        self.kind = kind
        self.runs = runs
        self.points = runs.map { ScalingStudy.point($0, base: base, kind: kind) }
        self.notes = notes
    }

    // MARK: - Loading

    /// Reads each file; a missing file or bad JSON is a usage error naming the file.
    public static func load(paths: [String]) throws -> [LoadedRun] {
        guard !paths.isEmpty else { throw TrainerError.usage("report: give at least one run report (RUN.json)") }
        return try paths.map { path in
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
                throw TrainerError.usage("report: \(path): no such file")
            }
            guard !isDir.boolValue else { throw TrainerError.usage("report: \(path) is a folder, not a run report") }
            do {
                return LoadedRun(path: path, report: try RunReport.read(from: path))
            } catch let error as DecodingError {
                throw TrainerError.usage("report: \(path) is not a vgg-dp run report (\(describe(error)))")
            } catch {
                throw TrainerError.usage("report: cannot read \(path): \(error.localizedDescription)")
            }
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func at(_ path: [CodingKey]) -> String {
            path.isEmpty ? "top level" : path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case let .dataCorrupted(c):
            return c.codingPath.isEmpty ? "not valid JSON" : "bad value at \(at(c.codingPath)): \(c.debugDescription)"
        case let .keyNotFound(key, c):
            return "missing key \(key.stringValue) at \(at(c.codingPath))"
        case let .typeMismatch(_, c), let .valueNotFound(_, c):
            return "wrong type at \(at(c.codingPath)): \(c.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }

    // MARK: - Kind

    /// Strong if every run has the same global batch, weak if every run has the
    /// same batch per rank, a sweep if every run has the same rank count but
    /// batch sizes differ. Runs at a single rank count and batch are called
    /// strong (with a note); runs that fit none is a usage error.
    public static func detectKind(_ reports: [RunReport]) throws -> (kind: StudyKind, note: String?) {
        guard !reports.isEmpty else { throw TrainerError.usage("report: no run reports given") }
        let ranks = Set(reports.map(\.ranks))
        let globals = Set(reports.map(\.globalBatch))
        let perRank = Set(reports.map(\.batchPerRank))
        if ranks.count == 1 {
            if perRank.count > 1 { return (.sweep, nil) }
            return (.strong, "every run has \(reports[0].ranks) rank(s) and batch \(reports[0].batchPerRank): nothing scales; reported as strong scaling")
        }
        if globals.count == 1 { return (.strong, nil) }
        if perRank.count == 1 { return (.weak, nil) }
        throw TrainerError.usage("""
            report: the runs share neither a global batch (\(list(globals))) nor a batch per rank (\(list(perRank))); \
            pass --kind strong or --kind weak to say how to compare them
            """)
    }

    static func list<T: Comparable & CustomStringConvertible>(_ s: Set<T>) -> String {
        s.sorted().map(\.description).joined(separator: ", ")
    }

    /// Notes for an explicit kind that the runs do not fit.
    static func mismatchNotes(_ reports: [RunReport], kind: StudyKind) -> [String] {
        let ranks = Set(reports.map(\.ranks))
        let globals = Set(reports.map(\.globalBatch))
        let perRank = Set(reports.map(\.batchPerRank))
        switch kind {
        case .strong where globals.count > 1:
            return ["--kind strong, but the global batch differs between runs (\(list(globals))): efficiency compares step times of unequal work"]
        case .weak where perRank.count > 1:
            return ["--kind weak, but the batch per rank differs between runs (\(list(perRank))): efficiency compares step times of unequal work per rank"]
        case .sweep where ranks.count > 1:
            return ["--kind sweep, but the rank count differs between runs (\(list(ranks)))"]
        default:
            return []
        }
    }

    /// Notes for runs that should not be compared: different networks, modes,
    /// step counts, BLAS builds; incomplete runs; unknown schemas.
    static func consistencyNotes(_ runs: [LoadedRun]) -> [String] {
        var notes: [String] = []
        func differ(_ what: String, _ value: (RunReport) -> String) {
            let values = runs.map { value($0.report) }
            guard Set(values).count > 1 else { return }
            let each = zip(runs, values).map { "\($0.name): \($1)" }.joined(separator: "; ")
            notes.append("\(what) differs between runs (\(each))")
        }
        differ("model", { "\($0.model) \($0.imageSize)×\($0.imageSize), width ÷\($0.widthDivisor), \($0.classes) classes" })
        differ("mode", { $0.mode })
        differ("timed steps", { "\($0.steps)" })
        differ("BLAS core", { $0.blasCore })
        differ("overlap", { $0.overlap ? "overlapped" : "after backward" })
        differ("bucket size", { "\($0.bucketMb) MiB" })
        for r in runs {
            if !r.report.complete { notes.append("\(r.name) is marked incomplete") }
            if r.report.schema != 1 { notes.append("\(r.name) has report schema \(r.report.schema); this tool reads schema 1") }
            if r.report.stepSeconds.mean <= 0 { notes.append("\(r.name) has no timed steps (step mean 0)") }
        }
        return notes
    }

    // MARK: - Formulas

    /// images/s of `run` over images/s of `base`.
    public static func speedup(_ run: RunReport, base: RunReport) -> Double {
        base.imagesPerSecond > 0 ? run.imagesPerSecond / base.imagesPerSecond : 0
    }

    /// Strong: T_b·N_b / (N·T_N) (T1/(N·TN) with a one-rank baseline).
    /// Weak: T_b / T_N. T is the slowest rank's mean step time.
    public static func efficiency(_ run: RunReport, base: RunReport, kind: StudyKind) -> Double? {
        let t = run.stepSeconds.mean, tb = base.stepSeconds.mean
        guard t > 0 else { return 0 }
        switch kind {
        case .strong: return tb * Double(base.ranks) / (Double(run.ranks) * t)
        case .weak: return tb / t
        case .sweep: return nil
        }
    }

    static func share(_ part: Double, _ whole: Double) -> Double { whole > 0 ? part / whole : 0 }

    static func point(_ run: LoadedRun, base: RunReport, kind: StudyKind) -> StudyPoint {
        let r = run.report
        let n = Double(max(r.perRank.count, 1))
        func rankMean(_ f: (RunReport.Rank) -> Double) -> Double { r.perRank.map(f).reduce(0, +) / n }
        return StudyPoint(
            file: run.name, ranks: r.ranks, batchPerRank: r.batchPerRank, globalBatch: r.globalBatch,
            hostCount: Set(r.hosts).count, blasThreads: r.blasThreads,
            stepMean: r.stepSeconds.mean, stepSD: r.stepSeconds.sd, imagesPerSecond: r.imagesPerSecond,
            speedup: speedup(r, base: base), efficiency: efficiency(r, base: base, kind: kind),
            exposedShare: share(r.exposedSecondsPerStep, r.stepSeconds.mean),
            allreduceShare: share(r.allreduceSecondsPerStep, r.stepSeconds.mean),
            stragglerRatio: r.stragglerRatio,
            data: rankMean(\.data), forward: rankMean(\.forward), backward: rankMean(\.backward),
            optimizer: rankMean(\.optimizer),
            allreduce: r.perRank.isEmpty ? r.allreduceSecondsPerStep : rankMean(\.allreduce),
            exposed: r.perRank.isEmpty ? r.exposedSecondsPerStep : rankMean(\.exposed))
    }

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
        var lines: [String]
        if kind == .sweep {
            lines = [ScalingStudy.sweepColumns.joined(separator: ",")]
            for p in points {
                lines.append([String(p.batchPerRank), num(p.stepMean), num(p.stepSD), num(p.imagesPerSecond)].joined(separator: ","))
            }
        } else {
            lines = [ScalingStudy.scalingColumns.joined(separator: ",")]
            for (p, run) in zip(points, runs) {
                let r = run.report
                let fields: [String] = [
                    String(p.ranks), String(p.batchPerRank), String(p.globalBatch), String(p.hostCount), String(p.blasThreads),
                    num(p.stepMean), num(p.stepSD), num(p.imagesPerSecond), num(p.speedup), p.efficiency.map(num) ?? "",
                    num(p.exposedShare), num(p.allreduceShare), num(p.stragglerRatio),
                    num(p.data), num(p.forward), num(p.backward), num(p.optimizer), num(p.allreduce), num(p.exposed),
                    kind.rawValue, r.model, String(r.imageSize), r.mode, p.file,
                ]
                lines.append(fields.map(ScalingStudy.csvField).joined(separator: ","))
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A number as CSV text: shortest round-trip decimal, no exponent surprises for readers.
    func num(_ x: Double) -> String { x.isFinite ? "\(x)" : "" }

    /// Quotes a field holding a comma, quote or line break (RFC 4180).
    public static func csvField(_ s: String) -> String {
        guard s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    // MARK: - Markdown

    /// The report: a header naming what was run, a table, the plots (when
    /// given, paths relative to the Markdown file), notes and the runs' command lines.
    public func markdown(plots: [Plot] = []) -> String {
        let b = baseline.report
        var out: [String] = []
        let what = "\(values { $0.model }) at \(values { "\($0.imageSize)×\($0.imageSize)" }), mode \(values { $0.mode })"
        switch kind {
        case .strong: out.append("# Strong scaling: \(what)")
        case .weak: out.append("# Weak scaling: \(what)")
        case .sweep: out.append("# Batch-size sweep: \(what)")
        }
        out.append("")
        var header: [String] = []
        header.append("model: \(values { $0.model }), image size \(values { "\($0.imageSize)×\($0.imageSize)" }), width ÷\(values { "\($0.widthDivisor)" }), \(values { "\($0.classes)" }) classes, \(values { Text.grouped($0.parameters) }) parameters")
        header.append("mode: \(values { $0.mode })" + (b.objective.map { ", objective \($0)" } ?? "")
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
                out.append("![\(p.title)](\(markdownLink(p.path)))")
            }
        }
        out += Self.bulletSection("Notes", notes)
        out.append("")
        out.append("## Runs")
        out.append("")
        out.append("Command lines as rank 0 saw them (the mpirun around them is not recorded):")
        out.append("")
        out.append("```")
        for r in runs {
            out.append("# \(r.name): \(r.report.ranks) rank(s) on \(Set(r.report.hosts).sorted().joined(separator: ", ")), started \(r.report.startedAt)")
            out.append(r.report.command.map(ScalingStudy.shellQuote).joined(separator: " "))
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
            [String(p.ranks), String(p.batchPerRank), String(p.globalBatch), String(p.hostCount), String(p.blasThreads),
             "\(ms(p.stepMean)) ± \(ms(p.stepSD))", Text.fixed(p.imagesPerSecond, 2), Text.fixed(p.speedup, 2) + "×",
             p.efficiency.map(pct) ?? "-", pct(p.exposedShare), pct(p.allreduceShare), Text.fixed(p.stragglerRatio, 3)]
        }
        return ScalingStudy.markdownTable(header, rows, leftColumns: 0)
    }

    func sweepTable() -> [String] {
        let smallest = points.first?.stepMean ?? 0
        let header = ["batch size", "ranks", "mean ± sd (s / batch)", "ms / image", "images/s", "× smallest"]
        let rows = points.map { p in
            ["\(p.batchPerRank)", "\(p.ranks)", "\(Text.fixed(p.stepMean, 4)) ± \(Text.fixed(p.stepSD, 4))",
             Text.fixed(p.batchPerRank > 0 ? 1000 * p.stepMean / Double(p.batchPerRank) : 0, 2),
             Text.fixed(p.imagesPerSecond, 2), smallest > 0 ? Text.fixed(p.stepMean / smallest, 2) : "-"]
        }
        return ScalingStudy.markdownTable(header, rows, leftColumns: 0)
    }

    /// A pipe table; numbers right-aligned.
    /// A blank line, "## title", a blank line and one "- " line per bullet;
    /// nothing when there are no bullets.
    public static func bulletSection(_ title: String, _ bullets: [String]) -> [String] {
        bullets.isEmpty ? [] : ["", "## \(title)", ""] + bullets.map { "- " + $0 }
    }

    public static func markdownTable(_ header: [String], _ rows: [[String]], leftColumns: Int) -> [String] {
        func line(_ cells: [String]) -> String {
            "| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |"
        }
        let rule = "|" + header.indices.map { $0 < leftColumns ? " --- |" : " ---: |" }.joined()
        return [line(header), rule] + rows.map(line)
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

    /// A path for a Markdown link: spaces and parentheses escaped.
    func markdownLink(_ path: String) -> String {
        path.replacingOccurrences(of: " ", with: "%20").replacingOccurrences(of: "(", with: "%28").replacingOccurrences(of: ")", with: "%29")
    }

    /// A word as a POSIX shell would need it: bare when safe, else single-quoted.
    public static func shellQuote(_ s: String) -> String {
        let safe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%")
        if !s.isEmpty && s.allSatisfy({ safe.contains($0) }) { return s }
        return "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}

/// `to` relative to the folder `from` (both made absolute against the current
/// folder), for links from a report to its plots: "plots/a.png", "../a.png".
public func relativePath(to path: String, fromFolder folder: String) -> String {
    func parts(_ p: String) -> [String] {
        URL(fileURLWithPath: p).standardizedFileURL.pathComponents.filter { $0 != "/" }
    }
    let target = parts(path), base = parts(folder)
    var common = 0
    while common < min(target.count, base.count) && target[common] == base[common] { common += 1 }
    let up = [String](repeating: "..", count: base.count - common)
    let rest = Array(target[common...])
    let joined = (up + rest).joined(separator: "/")
    return joined.isEmpty ? "." : joined
}
