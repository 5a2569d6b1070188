import Foundation

/// Runs the vgg-dp binary built with the tests, alone or under mpirun through
/// scripts/launch.sh (which adds what root and oversubscription need), with a
/// hard time limit so that a hung job fails the test instead of hanging it.
public enum Launcher {
    public struct Result {
        public var status: Int32
        public var stdout: String
        public var stderr: String
        public var all: String { stdout + stderr }
    }

    /// The package's root folder.
    public static let repoRoot: URL = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() } // Tests/TestSupport/Launcher.swift
        return url
    }()

    /// The vgg-dp binary next to the test bundle (.build/<config>/vgg-dp).
    public static let binary: String = {
        var candidates: [URL] = []
        for bundle in Bundle.allBundles + [Bundle.main] {
            candidates.append(bundle.bundleURL.deletingLastPathComponent().appendingPathComponent("vgg-dp"))
            candidates.append(bundle.bundleURL.appendingPathComponent("vgg-dp"))
        }
        candidates.append(repoRoot.appendingPathComponent(".build/debug/vgg-dp"))
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }?.path ?? "vgg-dp-not-found"
    }()

    /// A fresh temporary folder.
    public static func temporaryFolder() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("vgg-dp-test-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Runs vgg-dp with `arguments`: directly when `ranks` is nil, else under
    /// mpirun with that many ranks.
    public static func run(_ arguments: [String], ranks: Int? = nil, timeout: Int = 180,
                           environment: [String: String] = [:]) throws -> Result {
        var argv: [String]
        if let n = ranks {
            argv = ["bash", repoRoot.appendingPathComponent("scripts/launch.sh").path, "-n", String(n), "--"]
        } else {
            argv = [binary]
        }
        var env = environment
        env["VGGDP_BIN"] = env["VGGDP_BIN"] ?? binary
        return try command(argv + arguments, timeout: timeout, environment: env)
    }

    /// Runs any command (`argv[0]` looked up on PATH) with a hard time limit:
    /// `timeout` sends TERM to its process group after `timeout` seconds and
    /// KILL 5 s later, so the test fails instead of hanging. Status 124 means
    /// it timed out. `environment` is added to this process's environment.
    public static func command(_ argv: [String], timeout: Int = 180, environment: [String: String] = [:]) throws -> Result {
        let folder = temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let out = folder.appendingPathComponent("stdout"), err = folder.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        process.arguments = ["-k", "5", String(timeout)] + argv
        var env = ProcessInfo.processInfo.environment
        // Tests run the OpenBLAS kernel the environment gives them: vgg-dp
        // must not pick another (BLASKernel); a test may still override.
        env["VGGDP_OPENBLAS_KERNEL"] = "keep"
        for (k, v) in environment { env[k] = v }
        process.environment = env
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return Result(status: process.terminationStatus,
                      stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
                      stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "")
    }

    /// Tiny configuration: VGG-11 on 32×32 images, channels ÷16, 10 classes.
    public static let tiny = ["--model", "vgg11", "--image-size", "32", "--width-divisor", "16", "--classes", "10"]

    /// The 16 hex digits after "parameter checksum: " in a run's output.
    public static func checksum(_ text: String) -> String? {
        guard let range = text.range(of: "parameter checksum: ") else { return nil }
        return String(text[range.upperBound...].prefix(16))
    }

    /// The vgg-dp processes whose command line holds `marker` and whose
    /// environment holds one of `environment` (e.g. "OMPI_COMM_WORLD_RANK=1":
    /// the rank Open MPI or Slurm's PMIx gave it), found through /proc.
    public static func processes(marker: String, environment: [String]) -> [pid_t] {
        let ids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return ids.compactMap { id -> pid_t? in
            guard let pid = pid_t(id),
                  let cmdline = FileManager.default.contents(atPath: "/proc/\(id)/cmdline"),
                  let environ = FileManager.default.contents(atPath: "/proc/\(id)/environ") else { return nil }
            let words = cmdline.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            let env = Set(environ.split(separator: 0).map { String(decoding: $0, as: UTF8.self) })
            guard words.contains(marker), words.first?.hasSuffix("vgg-dp") == true,
                  environment.contains(where: env.contains) else { return nil }
            return pid
        }
    }
}
