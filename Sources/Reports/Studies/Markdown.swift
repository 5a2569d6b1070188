import Foundation

/// Markdown pieces the study, comparison and model documents share.
public enum Markdown {
    /// A pipe table; numbers right-aligned (all columns from `leftColumns` on).
    public static func table(_ header: [String], _ rows: [[String]], leftColumns: Int) -> [String] {
        func line(_ cells: [String]) -> String {
            "| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |"
        }
        let rule = "|" + header.indices.map { $0 < leftColumns ? " --- |" : " ---: |" }.joined()
        return [line(header), rule] + rows.map(line)
    }

    /// A blank line, "## title", a blank line and one "- " line per bullet;
    /// nothing when there are no bullets.
    public static func bulletSection(_ title: String, _ bullets: [String]) -> [String] {
        bullets.isEmpty ? [] : ["", "## \(title)", ""] + bullets.map { "- " + $0 }
    }

    /// A path for a Markdown link: spaces and parentheses escaped.
    public static func link(_ path: String) -> String {
        path.replacingOccurrences(of: " ", with: "%20").replacingOccurrences(of: "(", with: "%28").replacingOccurrences(of: ")", with: "%29")
    }

    /// A word as a POSIX shell would need it: bare when safe, else single-quoted.
    public static func shellQuote(_ s: String) -> String {
        let safe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%")
        if !s.isEmpty && s.allSatisfy({ safe.contains($0) }) { return s }
        return "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}

/// `to` relative to the folder `from` (both made absolute against the current
/// folder), for links from a report to its plots: "plots/a.png", "../a.png".
public func relativePath(to path: String, fromFolder folder: String) -> String {
    func parts(_ p: String) -> [String] {
        URL(fileURLWithPath: p).standardizedFileURL.pathComponents.filter { $0 != "/" }
    }
    let target = parts(path), base = parts(folder)
    var common = 0
    while common < min(target.count, base.count) && target[common] == base[common] { common += 1 }
    let up = [String](repeating: "..", count: base.count - common)
    let rest = Array(target[common...])
    let joined = (up + rest).joined(separator: "/")
    return joined.isEmpty ? "." : joined
}
