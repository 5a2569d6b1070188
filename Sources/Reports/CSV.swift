import Foundation
import Vocabulary

/// The one CSV writer (RFC 4180 quoting; lines end in LF, as every CSV this
/// tool has written): whole documents for `vgg-dp report` and `vgg-dp
/// model`, and rows appended to a file for `--csv`.
public enum CSV {
    /// A field as written: quoted when it holds a comma, a quote, CR or LF,
    /// with every quote inside doubled; otherwise as it is.
    public static func field(_ s: String) -> String {
        guard s.unicodeScalars.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// One line, without its line end.
    public static func line(_ fields: [String]) -> String {
        fields.map(field).joined(separator: ",")
    }

    /// A header line, then one line per row; each line ends in "\n".
    public static func document(header: [String], rows: [[String]]) -> String {
        ([line(header)] + rows.map(line)).map { $0 + "\n" }.joined()
    }

    /// Checks, before any work, that `append(row:header:to:)` can add to
    /// `path`: its folder exists and is writable (a row is appended by
    /// writing the whole new file next to it, then renaming), it is not a
    /// folder, and when it already has content its first line is `header`.
    /// Throws a usage error (`TrainerError.usage`, exit status 2) naming
    /// `flag` otherwise.
    public static func checkAppendable(_ path: String, header: [String], flag: String = "--csv") throws {
        let target = resolved(path)
        let folder = URL(fileURLWithPath: target).deletingLastPathComponent().path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDir), isDir.boolValue else {
            throw TrainerError.usage("\(flag) \(path): folder \(folder) does not exist")
        }
        guard access(folder, W_OK | X_OK) == 0 else {
            throw TrainerError.usage("\(flag) \(path): folder \(folder) is not writable")
        }
        guard FileManager.default.fileExists(atPath: target, isDirectory: &isDir) else { return }
        guard !isDir.boolValue else { throw TrainerError.usage("\(flag) \(path) is a folder, not a file") }
        let existing: Data
        do {
            existing = try Data(contentsOf: URL(fileURLWithPath: target))
        } catch {
            throw TrainerError.usage("\(flag) \(path): cannot read it: \(error.localizedDescription)")
        }
        try checkHeader(existing, header: header, path: path, flag: flag)
    }

    /// Appends one row to the CSV file at `path`: the header first when the
    /// file is missing or empty; the row on a line of its own even when the
    /// file's last byte is not a newline. All or nothing: the whole new file
    /// is written next to the old one, synced, and renamed over it (keeping
    /// its permission bits), so a failure (a full filesystem, a missing
    /// folder) leaves the file as it was and throws
    /// `TrainerError.failed("cannot write …")`. A file whose first line is
    /// not `header` is refused with `TrainerError.usage` and left alone.
    public static func append(row: [String], header: [String], to path: String, flag: String = "--csv") throws {
        try append(row: row, header: header, to: path, flag: flag, writer: writeAll)
    }

    /// `append` with the function that writes the new file given (tests pass
    /// one that fails as a full filesystem does).
    static func append(row: [String], header: [String], to path: String, flag: String,
                       writer: (Int32, Data) throws -> Void) throws {
        let target = resolved(path)
        var existing = Data()
        var permissions: mode_t? = nil
        var info = stat()
        if stat(target, &info) == 0 {
            guard (info.st_mode & S_IFMT) != S_IFDIR else { throw TrainerError.usage("\(flag) \(path) is a folder, not a file") }
            do {
                existing = try Data(contentsOf: URL(fileURLWithPath: target))
            } catch {
                throw TrainerError.failed("cannot append to \(path): \(error.localizedDescription)")
            }
            permissions = info.st_mode & 0o7777
        }
        try checkHeader(existing, header: header, path: path, flag: flag)
        var text = existing
        if existing.isEmpty {
            text.append(Data((line(header) + "\n").utf8))
        } else if existing.last != UInt8(ascii: "\n") {
            text.append(UInt8(ascii: "\n"))
        }
        text.append(Data((line(row) + "\n").utf8))
        try writeAtomically(text, to: target, permissions: permissions, writer: writer)
    }

    /// A file with content must start with `header` as its first line.
    static func checkHeader(_ existing: Data, header: [String], path: String, flag: String) throws {
        guard !existing.isEmpty else { return }
        let firstLine = existing.split(separator: UInt8(ascii: "\n"), maxSplits: 1, omittingEmptySubsequences: false).first ?? Data()
        var first = String(decoding: firstLine, as: UTF8.self)
        if first.hasSuffix("\r") { first.removeLast() }
        guard first == line(header) else {
            let shown = first.count > 120 ? String(first.prefix(120)) + "…" : first
            throw TrainerError.usage("""
                \(flag) \(path) has another header (first line: \(shown)); \
                rows are appended only under vgg-dp's own header: give a new file
                """)
        }
    }

    /// The path with symbolic links resolved, so that the rename replaces
    /// the file a link points to, not the link (the path as given when it
    /// does not exist yet).
    static func resolved(_ path: String) -> String {
        guard let real = realpath(path, nil) else { return path }
        defer { free(real) }
        return String(cString: real)
    }
}
