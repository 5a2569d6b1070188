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

/// BLAS threads per rank: as asked, or the node's cores shared by its ranks.
func blasThreads(requested: Int?, world: World) -> Int {
    if let t = requested { return t }
    return max(1, ProcessInfo.processInfo.activeProcessorCount / max(world.localSize, 1))
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

/// Refuses a folder that does not exist (or cannot be written, when asked).
func checkFolder(_ path: String, flag: String, writable: Bool) throws {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue else {
        throw TrainerError.usage("\(flag) \(path): no such folder")
    }
    if writable && !FileManager.default.isWritableFile(atPath: path) {
        throw TrainerError.usage("\(flag) \(path): folder is not writable")
    }
}

func printOut(_ s: String) {
    print(s)
    fflush(stdout)
}
