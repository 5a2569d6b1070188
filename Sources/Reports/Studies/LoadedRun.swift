import Foundation
import Vocabulary

/// One run read from disk: the file it came from and what it says.
public struct LoadedRun: Sendable {
    public var path: String
    public var report: RunReport

    public init(path: String, report: RunReport) {
        self.path = path
        self.report = report
    }

    /// The file's name without its folder, as the report prints it.
    public var name: String { URL(fileURLWithPath: path).lastPathComponent }

    /// Reads each file; a missing file or bad JSON is a usage error naming the file.
    public static func load(paths: [String]) throws -> [LoadedRun] {
        guard !paths.isEmpty else { throw TrainerError.usage("report: give at least one run report (RUN.json)") }
        return try paths.map { path in
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
                throw TrainerError.usage("report: \(path): no such file")
            }
            guard !isDir.boolValue else { throw TrainerError.usage("report: \(path) is a folder, not a run report") }
            do {
                let report = try RunReport.read(from: path)
                guard RunReport.readableSchemas.contains(report.schema) else {
                    throw TrainerError.usage("""
                        report: \(path) has report schema \(report.schema); this tool reads schema \
                        \(RunReport.readableSchemas.map(String.init).joined(separator: ", ")) (a newer vgg-dp wrote it?)
                        """)
                }
                return LoadedRun(path: path, report: report)
            } catch let error as TrainerError {
                throw error
            } catch let error as DecodingError {
                throw TrainerError.usage("report: \(path) is not a vgg-dp run report (\(describe(error)))")
            } catch {
                throw TrainerError.usage("report: cannot read \(path): \(error.localizedDescription)")
            }
        }
    }

    /// The error in the file's own words: keys as the JSON spells them
    /// (`per_rank`, not the Swift name `perRank`).
    static func describe(_ error: DecodingError) -> String {
        func at(_ path: [CodingKey]) -> String {
            path.isEmpty ? "top level" : path.map { $0.intValue.map { "[\($0)]" } ?? snakeCase($0.stringValue) }.joined(separator: ".")
        }
        switch error {
        case let .dataCorrupted(c):
            return c.codingPath.isEmpty ? "not valid JSON" : "bad value at \(at(c.codingPath)): \(c.debugDescription)"
        case let .keyNotFound(key, c):
            return "missing key \(snakeCase(key.stringValue)) at \(at(c.codingPath))"
        case let .typeMismatch(_, c), let .valueNotFound(_, c):
            return "wrong type at \(at(c.codingPath)): \(c.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }

    /// "perRank" → "per_rank", as JSONEncoder's convertToSnakeCase writes it.
    static func snakeCase(_ key: String) -> String {
        var out = ""
        for ch in key {
            if ch.isUppercase {
                if !out.isEmpty { out.append("_") }
                out.append(contentsOf: ch.lowercased())
            } else {
                out.append(ch)
            }
        }
        return out
    }
}
