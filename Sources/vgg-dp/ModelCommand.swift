import ArgumentParser
import Comm
import Foundation
import Reports
// Only for --bucket-mb: rebuilding a bucket plan needs the network's layer
// shapes, which only the engine knows (Trainer's BucketPlan(report:bucketMB:)).
import Trainer
import Vocabulary

enum ModelKind: String, CaseIterable, ExpressibleByArgument {
    case weak, strong
}

/// `vgg-dp model PROFILE.json`: predicted step time, images/s and efficiency
/// on N ranks from a one-rank profile and an α-β link cost. Starts no MPI.
struct ModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Predict data-parallel scaling from a one-rank profile (--report FILE) and a link cost (α, β).",
        discussion: """
        The profile is a one-rank run report (vgg-dp --report FILE): per-layer backward times, the other phases \
        and the bucket plan. The link is measured (--fit FILE from `allreduce-bench --json FILE`) or given \
        (--link 25gbit --latency 5us: β = 8/rate, α = the latency of one ring step).

        Each bucket's allreduce, T = 2(N−1)·α + 2·((N−1)/N)·bytes·β, can start once backward has passed the \
        bucket's lowest layer; buckets go one after another on one communication thread; after backward the \
        optimizer steps each bucket once its allreduce is done (exposed = the waits). Compute times scale \
        linearly with the batch per rank and with --compute-scale; the optimizer does not depend on the batch.

        --ranks-per-host, --cores-per-host, --exchange and --overlap describe the layout; the model then does \
        what the trainer does there: the exchange auto picks, the overlap default (none on a host whose cores \
        are all computing), threads beyond the cores sharing them. host-shared reduces within a host at the \
        memory bandwidth of the profile's optimizer pass, and across hosts the slice owners allreduce their \
        slices, the gradient crossing each host's link once. Where the --fit file holds the host CPU per byte on \
        the link (allreduce-bench across hosts), the bytes a host's link moves while backward runs take that CPU \
        from the host's idle cores, then from backward. --measured runs are predicted for their own layout.

        Example: vgg-dp model runs/profile.json --link 25gbit --latency 5us --batch-size 32 --ranks "8 64 1024" \
        --markdown model.md --csv model.csv --plots plots
        """)

    @Argument(help: ArgumentHelp("One-rank run report (vgg-dp --report FILE).", valueName: "PROFILE.json"))
    var profile: String
    @Option(help: ArgumentHelp("α and β from `vgg-dp allreduce-bench --json FILE`.", valueName: "FILE"))
    var fit: String?
    @Option(help: ArgumentHelp("Fit the --fit file's rows again with this weighting (relative or absolute) instead of using its fit.", valueName: "WEIGHTING"))
    var refit: CostFit.Weighting?
    @Option(help: ArgumentHelp("Link rate for a given network, e.g. 10gbit, 25gbit, 100gbit.", valueName: "RATE"))
    var link: String?
    @Option(help: ArgumentHelp("Latency α of one ring step with --link, e.g. 5us.", valueName: "TIME"))
    var latency: String?
    @Option(help: "weak (fixed batch per rank) or strong (fixed global batch).")
    var kind: ModelKind = .weak
    @Option(help: "Batch per rank for weak scaling (default: the profile's).")
    var batchSize: Int?
    @Option(help: "Global batch for strong scaling; rank counts it does not divide are left out.")
    var globalBatch: Int?
    @Option(help: "Rank counts, space- or comma-separated.")
    var ranks = "1 2 4 8 16 32 64 128 256 512 1024"
    @Option(help: "Multiply every compute time by this (a faster or slower host).")
    var computeScale: Double = 1
    @Option(help: "Ranks on each host: host-shared (--exchange) reduces within a host; a flat allreduce crosses hosts.")
    var ranksPerHost = 1
    @Option(help: "Cores on each host (default: enough for every rank's threads); threads beyond them share them, as the trainer's do. Also used for the --measured runs (default: what each recorded), e.g. 1 for 2 hosts simulated on 2 cores.")
    var coresPerHost: Int?
    @Option(help: "The exchange asked for, as the trainer takes it: allreduce, host-shared or auto.")
    var exchange: ExchangeChoice = .auto
    @Flag(inversion: .prefixedNo, help: "Overlap as the trainer's --overlap / --no-overlap (default: what the trainer picks for the layout).")
    var overlap: Bool? = nil
    @Option(help: ArgumentHelp("K:FILE, repeatable: FILE is a one-rank report of the profile's run measured while K copies of it ran at once on its machine (scripts/exchange_bench.sh E4 makes them). Hosts of 2 or more ranks with as many threads per core take their compute from it: core sharing and memory contention measured, not modelled.", valueName: "K:FILE"))
    var corun: [String] = []
    @Option(help: "Rebuild the bucket plan with this bucket size in MiB (default: the profile's plan).")
    var bucketMb: Double?
    @Option(parsing: .upToNextOption, help: ArgumentHelp("Measured run reports to compare with the model's prediction at their rank count and batch.", valueName: "RUN.json"))
    var measured: [String] = []
    @Option(help: ArgumentHelp("Write the Markdown here (default: print it).", valueName: "FILE"))
    var markdown: String?
    @Option(help: ArgumentHelp("Write the table as CSV (the columns of `vgg-dp report --csv`).", valueName: "FILE"))
    var csv: String?
    @Option(help: ArgumentHelp("Draw scripts/plot.py's scaling plots into this folder.", valueName: "DIR"))
    var plots: String?

    @Option(help: "Model gradients sent as none (the profile's buckets) or powersgd (its two messages per bucket; profile a one-rank run with --compression powersgd so that its optimizer phase holds the compression compute).")
    var compression: CompressionChoice = .none
    @Option(help: "PowerSGD's rank, with --compression powersgd.")
    var powersgdRank = PowerSGDSettings.defaultRank
    @Option(help: "Smallest weight gradient PowerSGD compresses, elements, with --compression powersgd.")
    var powersgdMinSize = PowerSGDSettings.defaultMinSize
    @Option(help: "Type the modelled gradients travel in: fp32, bf16 or fp16 (16-bit: half the bytes).")
    var allreduceDtype: GradientDType = .fp32

    func run() throws {
        try checkDistinctOutputs([("--markdown", markdown), ("--csv", csv)])
        try checkWritable(markdown, flag: "--markdown")
        try checkWritable(csv, flag: "--csv")
        let report = try loadRun(profile, what: "profile")
        var compute = try ComputeProfile(report: report)
        if let mb = bucketMb {
            guard mb >= 0, mb.isFinite else { throw TrainerError.usage("--bucket-mb must be 0 or more, got \(mb)") }
            compute = compute.with(plan: BucketPlan(report: report, bucketMB: mb))
        }
        if compression == .powersgd || allreduceDtype != .fp32 {
            guard powersgdRank >= 1, powersgdMinSize >= 1 else {
                throw TrainerError.usage("--powersgd-rank and --powersgd-min-size must be at least 1")
            }
            let settings = compression == .powersgd ? PowerSGDSettings(rank: powersgdRank, minSize: powersgdMinSize) : nil
            if let s = settings, report.compression != s.description {
                say("note: the profile was measured \(report.compression.map { "with \($0)" } ?? "without compression"): its optimizer phase does not hold \(s.description)'s compute")
            }
            compute = compute.compressed(report: report, settings: settings, dtype: allreduceDtype)
        }
        let (cost, source) = try linkCost()
        let counts = try parseRanks(ranks)
        guard ranksPerHost >= 1 else { throw TrainerError.usage("--ranks-per-host must be at least 1, got \(ranksPerHost)") }
        if let c = coresPerHost, c < 1 { throw TrainerError.usage("--cores-per-host must be at least 1, got \(c)") }
        let coRuns = try corun.map { try loadCoRun($0, profile: report) }
        let layout = ModelLayout(ranksPerHost: ranksPerHost, threadsPerRank: report.blasThreads, cores: coresPerHost,
                                 exchange: exchange, overlap: overlap, coRuns: coRuns)
        let study: ModelStudy
        switch kind {
        case .weak:
            guard globalBatch == nil else { throw TrainerError.usage("--global-batch is for --kind strong; weak scaling takes --batch-size") }
            study = try ScalingModel.study(profile: compute, cost: cost, kind: .weak, batch: batchSize ?? report.batchPerRank,
                                           ranks: counts, computeScale: computeScale, layout: layout)
        case .strong:
            guard batchSize == nil else { throw TrainerError.usage("--batch-size is for --kind weak; strong scaling takes --global-batch") }
            guard let g = globalBatch else { throw TrainerError.usage("--kind strong needs --global-batch G") }
            study = try ScalingModel.study(profile: compute, cost: cost, kind: .strong, batch: g, ranks: counts,
                                           computeScale: computeScale, layout: layout)
        }
        let runs = try measured.map { LoadedRun(path: $0, report: try loadRun($0, what: "measured run")) }
        let plotter = try plots.map { try Plotter(folder: $0) }

        let mode = "\(report.mode.rawValue) (model)"
        let table = study.csv(model: report.model.rawValue, imageSize: report.imageSize, mode: mode, blasThreads: report.blasThreads,
                              file: URL(fileURLWithPath: profile).lastPathComponent)
        if let csv {
            try writeAtomically(Data(table.utf8), to: csv)
            say("wrote \(csv)")
        }
        var pngs: [String] = []
        if let plotter {
            pngs = try draw(plotter, csvText: table, csvPath: csv)
            for p in pngs { say("wrote \(p)") }
        }
        let from = markdown.map { URL(fileURLWithPath: $0).deletingLastPathComponent().path } ?? FileManager.default.currentDirectoryPath
        let links = pngs.map { ScalingStudy.Plot(title: Plotter.title($0), path: relativePath(to: $0, fromFolder: from)) }
        let text = ModelReport(profilePath: profile, profile: report, compute: compute, cost: cost, costSource: source,
                               study: study, computeScale: computeScale, rebuiltBucketMb: bucketMb, measured: runs,
                               layout: layout)
            .markdown(plots: links)
        if let markdown {
            try writeAtomically(Data(text.utf8), to: markdown)
            say("wrote \(markdown)")
        } else {
            print(text, terminator: "")
        }
    }

    func say(_ s: String) { FileHandle.standardError.write(Data("vgg-dp model: \(s)\n".utf8)) }

    func loadRun(_ path: String, what: String) throws -> RunReport {
        do {
            return try LoadedRun.load(paths: [path])[0].report
        } catch let e as TrainerError {
            throw TrainerError.usage("\(what) " + e.description.replacingOccurrences(of: "report: ", with: ""))
        }
    }

    /// A `--corun K:FILE`: FILE's compute, checked to be the profile's run on a
    /// machine whose cores it recorded.
    func loadCoRun(_ text: String, profile: RunReport) throws -> CoRunProfile {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2, let copies = Int(parts[0]), copies >= 2, !parts[1].isEmpty else {
            throw TrainerError.usage("--corun takes K:FILE with K ≥ 2 copies that ran at once, e.g. 2:runs/corun2.json, got '\(text)'")
        }
        let path = parts[1]
        let r = try loadRun(path, what: "--corun")
        guard r.model == profile.model, r.imageSize == profile.imageSize, r.widthDivisor == profile.widthDivisor,
              r.batchPerRank == profile.batchPerRank, r.blasThreads == profile.blasThreads, r.mode == profile.mode,
              r.compression == profile.compression else {
            throw TrainerError.usage("--corun \(path) is not the profile's run (model, image size, width, batch, threads, mode and compression must match)")
        }
        guard let cores = r.coresPerHost else {
            throw TrainerError.usage("--corun \(path) does not record its machine's cores (cores_per_host); measure it again with this vgg-dp")
        }
        return CoRunProfile(compute: try ComputeProfile(report: r), copies: copies, cores: cores, threadsPerRank: r.blasThreads,
                            source: path)
    }

    /// α and β, and a line saying where they come from.
    func linkCost() throws -> (LinkCost, String) {
        switch (fit, link) {
        case (.some, .some):
            throw TrainerError.usage("give --fit FILE (measured) or --link RATE --latency TIME (given), not both")
        case (nil, nil):
            throw TrainerError.usage("model: give the network: --fit FILE (from allreduce-bench --json) or --link RATE --latency TIME")
        case let (.some(path), nil):
            guard latency == nil else { throw TrainerError.usage("--latency goes with --link, not --fit") }
            let record = try AllreduceBenchRecord.load(path)
            guard record.ranks >= 2, let stored = record.fit else {
                throw TrainerError.usage("--fit \(path) has no fit (a one-rank benchmark); measure with 2 or more ranks")
            }
            let hosts = Set(record.hosts).sorted()
            let f = try refit.map { try AllreduceBenchRecord.fit(ranks: record.ranks, hosts: hosts.count, rows: record.rows, weighting: $0) } ?? stored
            let wait = GradientWire.describe(record.commWait ?? .blocking)
            return (f.cost, "measured: \(path) (allreduce-bench, \(record.ranks) ranks on \(hosts.count) host(s): \(hosts.joined(separator: ", ")); \(wait)); \(f.summary)")
        case let (nil, .some(rate)):
            guard refit == nil else { throw TrainerError.usage("--refit goes with --fit, not --link") }
            guard let lat = latency else { throw TrainerError.usage("--link needs --latency (α, the latency of one ring step, e.g. 5us)") }
            let bits = try Units.bitsPerSecond(rate)
            let seconds = try Units.seconds(lat)
            let cost = LinkCost(bitsPerSecond: bits, latency: seconds)
            return (cost, String(format: "given: --link %@ --latency %@: α = %.2f µs, 1/β = %.3f GB/s",
                                 rate as NSString, lat as NSString, seconds * 1e6, cost.bandwidthGBps))
        }
    }

    func parseRanks(_ text: String) throws -> [Int] {
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "," }).map(String.init)
        let values = parts.compactMap(Int.init)
        guard !parts.isEmpty, values.count == parts.count, values.allSatisfy({ $0 >= 1 }) else {
            throw TrainerError.usage("--ranks must list positive integers, e.g. \"1 2 4 8\", got '\(text)'")
        }
        return values
    }

    func draw(_ plotter: Plotter, csvText: String, csvPath: String?) throws -> [String] {
        var temporary: URL?
        defer { if let t = temporary { try? FileManager.default.removeItem(at: t) } }
        let input: String
        if let csvPath {
            input = csvPath
        } else {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vgg-dp-model-\(getpid())")
            try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            temporary = dir
            input = dir.appendingPathComponent("model.csv").path
            try writeAtomically(Data(csvText.utf8), to: input)
        }
        var output = ""
        let status = Plotter.execute(plotter.python, [plotter.script, "scaling", input, "--out", plotter.folder], capture: &output)
        guard status == 0 else { throw TrainerError.failed("--plots: \(plotter.script) scaling failed (exit status \(status))") }
        return output.split(separator: "\n").map(String.init).filter { $0.hasSuffix(".png") }
    }
}
