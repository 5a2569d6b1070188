import Comm
import Foundation
import Trainer
import VGGEngine
import Vocabulary

/// Starts MPI, runs `body`, and turns errors into one message from rank 0
/// and the same exit status on every rank.
func withWorld(requested: ThreadLevel = .multiple, _ body: (World) throws -> Void) throws {
    let world = World(requested: requested)
    do {
        try body(world)
        world.finalize()
    } catch {
        let status: Int32
        let message: String
        switch error {
        case let e as TrainerError: status = e.exitCode; message = e.description
        case let e as EngineError: status = 2; message = e.description
        case let e as CommError: status = 1; message = e.description
        default: status = 1; message = "\(error)"
        }
        if world.isRoot { FileHandle.standardError.write(Data("vgg-dp: error: \(message)\n".utf8)) }
        world.finalize()
        exit(status)
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
    var message: [UInt8] = []
    if world.isRoot {
        do { try check() } catch { message = Array("\(error)".utf8) }
    }
    if world.size > 1 { world.broadcast(&message) }
    if !message.isEmpty { throw TrainerError.usage(String(decoding: message, as: UTF8.self)) }
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
