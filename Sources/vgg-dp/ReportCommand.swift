import ArgumentParser
import Foundation
import Reports
import Vocabulary

enum ReportKind: String, CaseIterable, ExpressibleByArgument {
    case auto, strong, weak, sweep, compare
}

/// `vgg-dp report RUN.json...`: a scaling study (or batch-size sweep) from
/// run reports, as Markdown, CSV and plots. Starts no MPI.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Summarise run reports (--report FILE) as a scaling study or a tool comparison: Markdown table, CSV, plots.",
        discussion: """
        Strong scaling runs share a --global-batch; weak scaling runs share a --batch-size per rank. \
        With --kind auto the kind is read from the runs: strong when they share a global batch, weak when they \
        share a batch per rank, sweep when they share a rank count but not a batch size (scripts/batch_sweep.sh).

        --kind compare (chosen by --kind auto when the runs come from different tools: vgg-dp and the \
        TensorFlow / PyTorch baselines of scripts/baselines/) puts the runs side by side, one row per run, with \
        images/s and peak RSS over the matching TensorFlow and PyTorch runs (same mode, batch, threads, ranks); \
        see docs/COMPARE.md.

        Speedup is images/s over the run with the fewest ranks; efficiency is T_b·N_b / (N·T_N) (strong) \
        or T_b / T_N (weak), T being the slowest rank's mean step time.

        Example: vgg-dp report runs/s/ranks-*.json --markdown runs/s/report.md --csv runs/s/report.csv --plots runs/s

        --plots runs scripts/plot.py with python3 and matplotlib. The scripts folder is $VGGDP_SCRIPTS, or the \
        scripts/ folder found above the vgg-dp binary (<repo>/.build/release/vgg-dp finds <repo>/scripts).
        """)

    @Argument(help: ArgumentHelp("Run reports written by vgg-dp --report.", valueName: "RUN.json"))
    var runs: [String] = []
    @Option(help: "How to compare the runs.")
    var kind: ReportKind = .auto
    @Option(help: ArgumentHelp("Write the Markdown report here (default: print it).", valueName: "FILE"))
    var markdown: String?
    @Option(help: ArgumentHelp("Write the table as CSV here.", valueName: "FILE"))
    var csv: String?
    @Option(help: ArgumentHelp("Draw PNG plots into this folder (python3 + matplotlib) and link them from the Markdown.", valueName: "DIR"))
    var plots: String?

    func run() throws {
        guard !runs.isEmpty else { throw TrainerError.usage("report: give at least one run report (RUN.json)") }
        try checkDistinctOutputs([("--markdown", markdown), ("--csv", csv)])
        try checkWritable(markdown, flag: "--markdown")
        try checkWritable(csv, flag: "--csv")
        let loaded = try LoadedRun.load(paths: runs)
        if kind == .compare || (kind == .auto && Set(loaded.map(\.report.tool)).count > 1) {
            guard plots == nil else { throw TrainerError.usage("--plots is not available for a comparison (--kind compare); drop it") }
            try compare(loaded)
            return
        }
        let study = try ScalingStudy(runs: loaded, kind: kind == .auto ? nil : StudyKind(rawValue: kind.rawValue))
        // Before writing anything: can we plot at all?
        let plotter = try plots.map { try Plotter(folder: $0) }
        for n in study.notes { say("note: \(n)") }

        if let csv {
            try writeAtomically(Data(study.csv().utf8), to: csv)
            say("wrote \(csv)")
        }
        var links: [ScalingStudy.Plot] = []
        if let plotter {
            let pngs = try plotter.draw(study, csv: csv)
            let from = markdown.map { URL(fileURLWithPath: $0).deletingLastPathComponent().path }
                ?? FileManager.default.currentDirectoryPath
            links = pngs.map { png in
                ScalingStudy.Plot(title: Plotter.title(png), path: relativePath(to: png, fromFolder: from))
            }
            for png in pngs { say("wrote \(png)") }
        }
        let text = study.markdown(plots: links)
        if let markdown {
            try writeAtomically(Data(text.utf8), to: markdown)
            say("wrote \(markdown)")
        } else {
            print(text, terminator: "")
        }
    }

    /// Runs of different tools side by side: CSV and Markdown, no plots.
    func compare(_ loaded: [LoadedRun]) throws {
        let comparison = try Comparison(runs: loaded)
        for n in comparison.notes { say("note: \(n)") }
        if let csv {
            try writeAtomically(Data(comparison.csv().utf8), to: csv)
            say("wrote \(csv)")
        }
        let text = comparison.markdown()
        if let markdown {
            try writeAtomically(Data(text.utf8), to: markdown)
            say("wrote \(markdown)")
        } else {
            print(text, terminator: "")
        }
    }

    /// Progress and notes go to stderr so that stdout is the Markdown alone.
    func say(_ s: String) {
        FileHandle.standardError.write(Data("vgg-dp report: \(s)\n".utf8))
    }
}

/// Runs scripts/plot.py; refuses (exit 1) when python3, matplotlib or the
/// script cannot be found.
struct Plotter {
    let folder: String
    let python: String
    let script: String

    init(folder: String) throws {
        guard let script = Plotter.findScript() else {
            throw TrainerError.failed("""
                --plots: cannot find scripts/plot.py (looked in $VGGDP_SCRIPTS and above the vgg-dp binary); \
                set VGGDP_SCRIPTS=<repo>/scripts, or drop --plots
                """)
        }
        self.script = script
        guard let python = Plotter.which("python3") else {
            throw TrainerError.failed("--plots needs python3 with matplotlib, and python3 is not on PATH: run scripts/setup.sh, or drop --plots")
        }
        self.python = python
        let probe = Plotter.execute(python, ["-c", "import matplotlib"], quiet: true)
        guard probe == 0 else {
            throw TrainerError.failed("""
                --plots needs matplotlib, and \(python) cannot import it: run scripts/setup.sh \
                (or: python3 -m pip install matplotlib), or drop --plots
                """)
        }
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: folder, isDirectory: &isDir) {
            guard isDir.boolValue else { throw TrainerError.usage("--plots \(folder) is a file, not a folder") }
        } else {
            do {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            } catch {
                throw TrainerError.usage("--plots \(folder): cannot create the folder: \(error.localizedDescription)")
            }
        }
        self.folder = folder
    }

    /// Writes the CSV plot.py reads (a temporary one when --csv was not
    /// given), runs it and returns the PNG paths it printed.
    func draw(_ study: ScalingStudy, csv: String?) throws -> [String] {
        var temporary: URL?
        defer { if let t = temporary { try? FileManager.default.removeItem(at: t) } }
        let input: String
        if let csv {
            input = csv
        } else {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vgg-dp-report-\(getpid())")
            try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            temporary = dir
            // plot.py labels a sweep by its file name: sweep-<host>.csv.
            let name = study.kind == .sweep ? "sweep-\(study.baseline.report.hosts.first ?? "run").csv" : "scaling.csv"
            let file = dir.appendingPathComponent(name.replacingOccurrences(of: "/", with: "_"))
            try writeAtomically(Data(study.csv().utf8), to: file.path)
            input = file.path
        }
        let subcommand = study.kind == .sweep ? "sweep" : "scaling"
        var output = ""
        let status = Plotter.execute(python, [script, subcommand, input, "--out", folder], capture: &output)
        guard status == 0 else {
            throw TrainerError.failed("--plots: \(script) \(subcommand) failed (exit status \(status))")
        }
        return output.split(separator: "\n").map(String.init).filter { $0.hasSuffix(".png") }
    }

    /// "scaling-throughput.png" → "scaling throughput".
    static func title(_ png: String) -> String {
        URL(fileURLWithPath: png).deletingPathExtension().lastPathComponent.replacingOccurrences(of: "-", with: " ")
    }

    /// $VGGDP_SCRIPTS, else a scripts/plot.py in a folder above the binary
    /// (as invoked, then with links resolved).
    static func findScript() -> String? {
        let fm = FileManager.default
        if let dir = ProcessInfo.processInfo.environment["VGGDP_SCRIPTS"], !dir.isEmpty {
            let p = URL(fileURLWithPath: dir).appendingPathComponent("plot.py").path
            return fm.fileExists(atPath: p) ? p : nil
        }
        var binaries: [URL] = []
        let argv0 = CommandLine.arguments.first ?? ""
        if argv0.contains("/") {
            binaries.append(URL(fileURLWithPath: argv0))
        } else if let found = which(argv0) {
            binaries.append(URL(fileURLWithPath: found))
        }
        if let exe = try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            binaries.append(URL(fileURLWithPath: exe))
        }
        for binary in binaries {
            var dir = binary.standardizedFileURL.deletingLastPathComponent()
            for _ in 0..<6 {
                let p = dir.appendingPathComponent("scripts/plot.py").path
                if fm.fileExists(atPath: p) { return p }
                if dir.path == "/" { break }
                dir = dir.deletingLastPathComponent()
            }
        }
        return nil
    }

    static func which(_ name: String) -> String? {
        guard !name.isEmpty else { return nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let p = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    static func execute(_ program: String, _ arguments: [String], quiet: Bool = false) -> Int32 {
        var ignored = ""
        return execute(program, arguments, quiet: quiet, capture: &ignored, keep: false)
    }

    static func execute(_ program: String, _ arguments: [String], capture: inout String) -> Int32 {
        execute(program, arguments, quiet: false, capture: &capture, keep: true)
    }

    /// Runs a program; stderr passes through unless quiet; stdout is captured when `keep`.
    private static func execute(_ program: String, _ arguments: [String], quiet: Bool, capture: inout String, keep: Bool) -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: program)
        p.arguments = arguments
        let out = Pipe()
        p.standardOutput = out
        if quiet { p.standardError = FileHandle.nullDevice }
        do { try p.run() } catch { return 127 }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        if keep { capture = String(decoding: data, as: UTF8.self) }
        return p.terminationStatus
    }
}
