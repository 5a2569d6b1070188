import Comm
import Foundation
import Trainer
import VGGEngine
import Vocabulary

/// Starts MPI, runs `body`, and turns errors into one message (from rank 0,
/// or from every rank that saw MPI fail) and the same exit status on every rank.
func withWorld(requested: ThreadLevel = .multiple, _ body: (World) throws -> Void) throws {
    let world: World
    do { world = try World.start(requested: requested) } catch { Exit.fail(error, printHere: true) }
    do {
        try body(world)
        world.finalize()
    } catch let error as CommError {
        // MPI itself failed: the group may be broken, so no finalize; every
        // rank that saw it says so and the job ends.
        FileHandle.standardError.write(Data((Exit.message(for: error) + " (rank \(world.rank))\n").utf8))
        world.abort(code: Exit.status(for: error))
    } catch {
        // Rank 0 speaks before MPI_Finalize: once another rank has exited
        // after it, mpirun may end rank 0 at any moment.
        Exit.say(error, printHere: world.isRoot)
        world.finalize()
        exit(Exit.status(for: error))
    }
}

/// BLAS threads per rank: as asked, or the node's cores shared by its
/// ranks; at most what OpenBLAS runs. OpenBLAS caps the count at its build's
/// MAX_THREADS without a word, so the count is set and read back here, and
/// rank 0 says once when it differs from the one asked for, and when the
/// ranks' threads outnumber the host's cores (allowed: oversubscription is
/// a legitimate experiment, but the user should know). What this returns is
/// what the layout line and the report show.
func blasThreads(requested: Int?, world: World) -> Int {
    let cores = ProcessInfo.processInfo.activeProcessorCount
    guard let asked = requested else { return max(1, cores / max(world.localSize, 1)) }
    BLAS.setThreads(asked)
    let ran = BLAS.threads
    guard ran >= 1, ran < asked else {
        if world.isRoot && asked * world.localSize > cores {
            printOut("note: --threads \(asked) × \(world.localSize) rank(s) on this host is \(asked * world.localSize) threads on \(cores) cores: oversubscribed")
        }
        return asked
    }
    if world.isRoot {
        printOut("note: --threads \(asked): OpenBLAS here runs at most \(ran) threads per rank (\(BLAS.config)); running \(ran)"
            + (ran * world.localSize > cores ? ", \(ran * world.localSize) threads on \(cores) cores: oversubscribed" : ""))
    }
    return ran
}

/// Refuses an output path whose folder is missing or not writable, before
/// any work is done.
func checkWritable(_ path: String?, flag: String) throws {
    guard let path else { return }
    let url = URL(fileURLWithPath: path)
    let dir = url.deletingLastPathComponent().path
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
        throw TrainerError.usage("\(flag) \(path): folder \(dir) does not exist")
    }
    guard FileManager.default.isWritableFile(atPath: dir) else {
        throw TrainerError.usage("\(flag) \(path): folder \(dir) is not writable")
    }
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
        throw TrainerError.usage("\(flag) \(path) is a folder, not a file")
    }
}

/// Runs `check` on rank 0, the only rank that reads or writes files, and
/// hands its verdict to every rank: a folder that exists only on rank 0's
/// node is fine, and every rank stops on a bad one.
func checkOnRoot(_ world: World, _ check: () throws -> Void) throws {
    var message = ""
    if world.isRoot {
        do { try check() } catch { message = "\(error)" }
    }
    if world.size > 1 { message = try world.broadcast(message) }
    if !message.isEmpty { throw TrainerError.usage(message) }
}

/// Refuses an existing file (or anything but a folder) at a folder's path.
func refuseFile(at path: String, flag: String) throws {
    var isDir: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue {
        throw TrainerError.usage("\(flag) \(path) is a file, not a folder")
    }
}

/// Refuses a folder that does not exist, or, when `writable` (an output
/// folder), creates it with its parents and refuses one that cannot be
/// created or written; a file at the path is refused either way.
func checkFolder(_ path: String, flag: String, writable: Bool) throws {
    try refuseFile(at: path, flag: flag)
    if !FileManager.default.fileExists(atPath: path) {
        guard writable else { throw TrainerError.usage("\(flag) \(path): no such folder") }
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            let reason = (error as NSError).userInfo[NSUnderlyingErrorKey].map { ($0 as? NSError)?.localizedDescription ?? "\($0)" }
                ?? error.localizedDescription
            throw TrainerError.usage("\(flag) \(path): cannot create the folder: \(reason)")
        }
        printOut("\(flag): created \(path)")
    }
    if writable && access(path, W_OK | X_OK) != 0 {
        throw TrainerError.usage("\(flag) \(path): folder is not writable (\(String(cString: strerror(errno))))")
    }
}

/// The path as the filesystem sees it: relative to the working folder, with
/// `.`, `..` and symbolic links resolved in the part that exists (a file
/// not written yet keeps its name under its resolved folder).
func canonicalPath(_ path: String) -> String {
    var url = URL(fileURLWithPath: path).standardizedFileURL
    var rest: [String] = []
    while true {
        if let real = realpath(url.path, nil) {
            defer { free(real) }
            var resolved = URL(fileURLWithPath: String(cString: real))
            for c in rest.reversed() { resolved.appendPathComponent(c) }
            return resolved.standardizedFileURL.path
        }
        if url.path == "/" { return URL(fileURLWithPath: path).standardizedFileURL.path }
        rest.append(url.lastPathComponent)
        url.deleteLastPathComponent()
    }
}

/// Refuses two outputs that would land on one file (the same path after
/// `canonicalPath`, or two names of one existing file): one would
/// overwrite or corrupt the other.
func checkDistinctOutputs(_ outputs: [(flag: String, path: String?)]) throws {
    var seen: [(flag: String, path: String, canonical: String, id: (dev_t, ino_t)?)] = []
    for case let (flag, path?) in outputs {
        let canonical = canonicalPath(path)
        var info = stat()
        let id = stat(canonical, &info) == 0 ? (info.st_dev, info.st_ino) : nil
        if let other = seen.first(where: { $0.canonical == canonical || ($0.id != nil && id != nil && $0.id! == id!) }) {
            let same = other.path == path ? "\(path)" : "\(other.path) and \(path) (both \(canonical))"
            throw TrainerError.usage("contradictory options: \(other.flag) and \(flag) both write \(same); give each output its own file")
        }
        seen.append((flag, path, canonical, id))
    }
}

/// Removes temporary files next to `outputs` that a killed run left behind
/// (see `TemporaryFiles.removeOrphans`), and says so.
func removeOrphanedTemporaries(_ outputs: [String]) {
    for path in outputs {
        for orphan in TemporaryFiles.removeOrphans(of: path) {
            printOut("removed \(orphan): a temporary file left by a run that has ended (its process is gone)")
        }
    }
}

/// MemAvailable of /proc/meminfo, bytes: what can be allocated without
/// swapping (nil where there is no /proc/meminfo).
func availableMemoryBytes() -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
        let fields = line.split(separator: " ")
        if fields.count >= 2, let kib = Int(fields[1]) { return kib * 1024 }
    }
    return nil
}

/// "1.5 GiB" (2^30 bytes).
func gibibytes(_ bytes: Int) -> String { String(format: "%.1f GiB", Double(bytes) / 1_073_741_824) }

func printOut(_ s: String) {
    print(s)
    fflush(stdout)
}
