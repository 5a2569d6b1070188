import Foundation
import Vocabulary

/// What a set of runs measures.
public enum StudyKind: String, CaseIterable, Sendable {
    /// Same global batch at every rank count: the work is split (time should fall as 1/N).
    case strong
    /// Same batch per rank at every rank count: the work grows with N (time should stay flat).
    case weak
    /// One rank count, batch per rank varies: the notebook's time-per-batch sweep.
    case sweep
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
    /// False for a run that stopped early (`complete: false`): its row is
    /// marked "(incomplete)", and a note says what it holds.
    public var complete = true
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
        differ("model", { "\($0.model.rawValue) \($0.imageSize)×\($0.imageSize), width ÷\($0.widthDivisor), \($0.classes) classes" })
        differ("mode", { $0.mode.rawValue })
        differ("timed steps", { "\($0.steps)" })
        differ("BLAS core", { $0.blasCore })
        differ("overlap", { $0.overlap ? "overlapped" : "after backward" })
        differ("bucket size", { "\($0.bucketMb) MiB" })
        for r in runs {
            if !r.report.complete { notes.append(incompleteNote(r)) }
            if r.report.schema != 1 { notes.append("\(r.name) has report schema \(r.report.schema); this tool reads schema 1") }
            if r.report.stepSeconds.mean <= 0 { notes.append("\(r.name) has no timed steps (step mean 0)") }
        }
        return notes
    }

    /// What an incomplete run's figures are worth.
    static func incompleteNote(_ run: LoadedRun) -> String {
        let r = run.report
        return "\(run.name) is marked incomplete (\(r.note ?? "no reason recorded")): its row, marked (incomplete), "
            + "covers only the \(r.perRank.first?.steps.count ?? 0) timed step(s) it ran, timed on \(r.perRank.count) of its \(r.ranks) rank(s)"
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
        var point = StudyPoint(
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
        point.complete = r.complete
        return point
    }
}
