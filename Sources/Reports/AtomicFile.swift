import Foundation
import Vocabulary

/// Writes a file so that readers see the old content or the new, never a
/// part: a temporary file in the same folder, fsync, then rename over. The
/// temporary file is recorded in `TemporaryFiles` while it exists, so that
/// a signal or an abort removes it before the process ends.
public func writeAtomically(_ data: Data, to path: String) throws {
    try writeAtomically(data, to: path, writer: writeAll)
}

/// `writeAtomically` for content too large to build in memory first: `fill`
/// writes it to the temporary file's descriptor in pieces (with
/// `writeAll(_:_:)`), and may throw to abandon the write.
public func writeAtomically(to path: String, fill: (Int32) throws -> Void) throws {
    try writeAtomically(Data(), to: path) { fd, _ in try fill(fd) }
}

/// Why `writeAll` stopped: an errno message, turned into "cannot write PATH:
/// reason" by `writeAtomically`.
public struct WriteFailure: Error {
    public var reason: String
}

/// `writeAtomically` with the function that fills the temporary file given
/// (tests pass one that fails as a full filesystem does), and the new file's
/// permission bits when they must be an existing file's. On any failure the
/// temporary file is removed, `path` is left as it was, and the error is
/// `TrainerError.failed("cannot write PATH: reason")`.
func writeAtomically(_ data: Data, to path: String, permissions: mode_t? = nil,
                     writer: (Int32, Data) throws -> Void) throws {
    func failed(_ reason: String) -> TrainerError { .failed("cannot write \(path): \(reason)") }
    let url = URL(fileURLWithPath: path)
    let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())").path
    let fd = TemporaryFiles.create(tmp)
    guard fd >= 0 else { throw failed(String(cString: strerror(errno))) }
    do {
        if let permissions, fchmod(fd, permissions) != 0 { throw WriteFailure(reason: String(cString: strerror(errno))) }
        try writer(fd, data)
        guard fsync(fd) == 0 else { throw WriteFailure(reason: String(cString: strerror(errno))) }
    } catch let e as WriteFailure {
        close(fd)
        TemporaryFiles.remove(tmp)
        throw failed(e.reason)
    } catch {
        close(fd)
        TemporaryFiles.remove(tmp)
        throw error
    }
    close(fd)
    guard rename(tmp, path) == 0 else {
        let reason = String(cString: strerror(errno))
        TemporaryFiles.remove(tmp)
        throw failed(reason)
    }
    TemporaryFiles.forget(tmp)
}

/// Writes all of `data` to `fd` with POSIX write, going on after short
/// writes and EINTR; throws `WriteFailure` on any other error (ENOSPC, EIO,
/// ...) and on a write that makes no progress.
func writeAll(_ fd: Int32, _ data: Data) throws {
    try data.withUnsafeBytes { try writeAll(fd, $0) }
}

/// `writeAll` from memory the caller owns (no copy).
public func writeAll(_ fd: Int32, _ raw: UnsafeRawBufferPointer) throws {
    var offset = 0
    while offset < raw.count {
        let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
        if n < 0 && errno == EINTR { continue }
        if n < 0 { throw WriteFailure(reason: String(cString: strerror(errno))) }
        if n == 0 { throw WriteFailure(reason: "write made no progress") }
        offset += n
    }
}
