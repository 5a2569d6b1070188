import Foundation

/// The temporary files this process has open for atomic writes
/// (`.NAME.tmp-PID` next to NAME), so that a path that ends the process
/// early (a signal handled on a dispatch queue, the watchdog's abort) can
/// remove them first. Creating and removing a file happen under one lock,
/// and `removeAllAndHold` keeps that lock: no thread creates a new one
/// between the sweep and the end of the process.
public enum TemporaryFiles {
    private static let lock = NSLock()
    private static var paths: Set<String> = []

    /// Creates (or truncates) `path` for writing and records it; returns the
    /// descriptor, or -1 with `errno` set.
    public static func create(_ path: String, mode: mode_t = 0o644) -> Int32 {
        lock.lock()
        defer { lock.unlock() }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode)
        if fd >= 0 { paths.insert(path) }
        return fd
    }

    /// Unlinks `path` and forgets it.
    public static func remove(_ path: String) {
        lock.lock()
        defer { lock.unlock() }
        unlink(path)
        paths.remove(path)
    }

    /// Forgets `path` (it was renamed into place).
    public static func forget(_ path: String) {
        lock.lock()
        defer { lock.unlock() }
        paths.remove(path)
    }

    /// The files recorded now (for tests and messages).
    public static var current: [String] {
        lock.lock()
        defer { lock.unlock() }
        return paths.sorted()
    }

    /// Unlinks every recorded file; writes may go on afterwards.
    public static func removeAll() {
        lock.lock()
        defer { lock.unlock() }
        for p in paths { unlink(p) }
        paths.removeAll()
    }

    /// Unlinks every recorded file and keeps the lock, for a caller that
    /// ends the process next (`_exit`, `MPI_Abort`): a thread that tries to
    /// start another atomic write waits until the process is gone.
    public static func removeAllAndHold() {
        lock.lock()
        for p in paths { unlink(p) }
        paths.removeAll()
    }

    /// Removes `.NAME.tmp-PID` files beside `target` (NAME its last
    /// component) left by a process that no longer runs on this host
    /// (`kill(PID, 0)` fails with ESRCH); returns what it removed. A file of
    /// a live process, of this process, or of another name is left alone.
    public static func removeOrphans(of target: String) -> [String] {
        let url = URL(fileURLWithPath: target)
        let folder = url.deletingLastPathComponent().path
        let prefix = ".\(url.lastPathComponent).tmp-"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return [] }
        var removed: [String] = []
        for name in names where name.hasPrefix(prefix) {
            guard let pid = Int32(name.dropFirst(prefix.count)), pid > 0, pid != getpid() else { continue }
            guard kill(pid, 0) != 0 && errno == ESRCH else { continue }
            let path = URL(fileURLWithPath: folder).appendingPathComponent(name).path
            if unlink(path) == 0 { removed.append(path) }
        }
        return removed.sorted()
    }
}
