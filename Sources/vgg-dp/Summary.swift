import ArgumentParser
import Foundation
import Reports
import Vocabulary

/// `vgg-dp summary RUN.json... --field a,b.c`: chosen figures of run reports,
/// one tab-separated line per report, for scripts (scripts/bench.sh,
/// scripts/compare.sh) that would otherwise parse the JSON themselves.
/// Starts no MPI.
struct SummaryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "summary",
        abstract: "Print chosen fields of run reports (--report FILE), one tab-separated line per report.",
        discussion: """
        A field is a key of the report's JSON, with dots into objects: step_seconds.median, images_per_second, \
        peak_rss_bytes. Through a list of objects a field is the mean of its numbers over the list \
        (per_rank.forward: the mean over ranks of each rank's mean forward seconds) or the values joined by \
        commas (per_rank.host). Numbers are printed exactly (the shortest text that reads back as the same \
        double); a field the report leaves out (e.g. conv in a baseline's report) prints as an empty value. \
        Every file is read as a run report first, so a file that is not one is refused.

        Example: vgg-dp summary runs/a.json runs/b.json --field step_seconds.median,images_per_second --header
        """)

    static let defaultFields = ["tool", "mode", "ranks", "global_batch", "step_seconds.median", "step_seconds.mean",
                                "step_seconds.sd", "images_per_second", "gflops_per_second", "peak_rss_bytes"]

    @Argument(help: ArgumentHelp("Run reports written by vgg-dp --report (or the baselines).", valueName: "RUN.json"))
    var runs: [String] = []
    @Option(help: ArgumentHelp("Comma-separated fields (default: \(SummaryCommand.defaultFields.joined(separator: ","))).", valueName: "FIELDS"))
    var field: String?
    @Flag(help: "Print the field names first.")
    var header = false

    func run() throws {
        guard !runs.isEmpty else { throw TrainerError.usage("summary: give at least one run report (RUN.json)") }
        let fields = field.map { $0.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingCharacters(in: .whitespaces) } }
            ?? SummaryCommand.defaultFields
        guard !fields.contains(where: \.isEmpty) else { throw TrainerError.usage("--field: an empty field name in '\(field ?? "")'") }
        var lines: [String] = header ? [fields.joined(separator: "\t")] : []
        for path in runs {
            lines.append(try ReportFields(path: path).values(fields).joined(separator: "\t"))
        }
        print(lines.joined(separator: "\n"))
    }
}

/// A run report's JSON, checked to be a `RunReport`, with its fields looked up by name.
struct ReportFields {
    let path: String
    let json: JSONValue
    /// The report's snake_case field names, those it leaves out included.
    let known: Set<String>

    init(path: String) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw TrainerError.usage("summary: \(path): no such file")
        }
        guard !isDir.boolValue else { throw TrainerError.usage("summary: \(path) is a folder, not a run report") }
        let report: RunReport
        do {
            report = try RunReport.read(from: path)
        } catch let error as DecodingError {
            throw TrainerError.usage("summary: \(path) is not a vgg-dp run report (\(ReportFields.reason(error)))")
        } catch {
            throw TrainerError.usage("summary: cannot read \(path): \(error.localizedDescription)")
        }
        self.path = path
        json = try JSONDecoder().decode(JSONValue.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        known = Set(Mirror(reflecting: report).children.compactMap { $0.label.map(ReportFields.snakeCase) })
    }

    func values(_ fields: [String]) throws -> [String] {
        try fields.map { f in
            let keys = f.split(separator: ".").map(String.init)
            guard let first = keys.first, known.contains(first) else {
                throw TrainerError.usage("--field \(f): a run report has no field '\(keys.first ?? f)'; fields: \(known.sorted().joined(separator: ", "))")
            }
            guard let v = json.lookup(keys[...]) else {
                // A field of RunReport that this report leaves out (nil when written).
                if keys.count == 1 { return "" }
                throw TrainerError.usage("--field \(f): \(path) has no field '\(f)'")
            }
            return try v.text(field: f)
        }
    }

    static func reason(_ error: DecodingError) -> String {
        func at(_ path: [CodingKey]) -> String {
            path.isEmpty ? "top level" : path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case let .dataCorrupted(c): return c.codingPath.isEmpty ? "not valid JSON" : "bad value at \(at(c.codingPath))"
        case let .keyNotFound(key, c): return "no field \(at(c.codingPath + [key]))"
        case let .typeMismatch(_, c), let .valueNotFound(_, c): return "bad value at \(at(c.codingPath))"
        @unknown default: return "\(error)"
        }
    }

    /// "rssAtStep100Bytes" → "rss_at_step100_bytes", as JSONEncoder's convertToSnakeCase writes these names.
    static func snakeCase(_ s: String) -> String {
        var out = ""
        for c in s {
            if c.isUppercase { out += "_" + c.lowercased() } else { out.append(c) }
        }
        return out
    }
}

/// Any JSON value, decoded exactly (integers stay integers, doubles keep every bit).
indirect enum JSONValue: Decodable {
    case null, bool(Bool), int(Int), double(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int.self) { self = .int(i) }
        else if let d = try? c.decode(Double.self) { self = .double(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    /// The value at a key path: into objects by key; through a list, each element's value (a list).
    func lookup(_ keys: ArraySlice<String>) -> JSONValue? {
        guard let key = keys.first else { return self }
        switch self {
        case let .object(o): return o[key].flatMap { $0.lookup(keys.dropFirst()) }
        case let .array(a):
            let values = a.compactMap { $0.lookup(keys) }
            return values.count == a.count && !a.isEmpty ? .array(values) : nil
        default: return nil
        }
    }

    var number: Double? {
        switch self {
        case let .int(i): return Double(i)
        case let .double(d): return d
        default: return nil
        }
    }

    /// Scalars as text; a list of numbers as their mean (summed in order), other lists comma-joined.
    func text(field: String) throws -> String {
        switch self {
        case .null: return ""
        case let .bool(b): return b ? "true" : "false"
        case let .int(i): return String(i)
        case let .double(d): return "\(d)"
        case let .string(s): return s.replacingOccurrences(of: "\t", with: " ").replacingOccurrences(of: "\n", with: " ")
        case let .array(a):
            let numbers = a.compactMap(\.number)
            if !a.isEmpty, numbers.count == a.count {
                return "\(numbers.reduce(0, +) / Double(numbers.count))"
            }
            return try a.map { try $0.text(field: field) }.joined(separator: ",")
        case let .object(o):
            throw TrainerError.usage("--field \(field) is an object; name one of its fields: "
                + o.keys.sorted().map { "\(field).\($0)" }.joined(separator: ", "))
        }
    }
}
