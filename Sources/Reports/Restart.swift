import Foundation
import Vocabulary

/// One relaunch of a job by `scripts/launch.sh --max-restarts` (the restart
/// logic is scripts/lib/elastic.sh), as the launcher saw it. The launcher
/// appends one JSON line per restart (snake_case keys) to the log it passes
/// to vgg-dp with `--restart-log`; rank 0 reads the log and the report lists
/// the restarts (`RunReport.restarts`).
///
/// What the launcher can tell is limited: it sees mpirun's exit status and
/// messages, the checkpoint's header and rank 0's progress lines (one every
/// 10th timed step). So the steps recomputed are a range: at least the
/// completed steps past the checkpoint that it saw, at most the checkpoint
/// interval (or the steps left, if fewer).
public struct Restart: Codable, Equatable, Sendable {
    /// 1 for the first restart of the job, 2 for the second...
    public var restart: Int
    /// When the launcher saw the job end, UTC, ISO 8601 ("2026-12-03T13:02:11Z").
    public var at: String
    /// What was lost, in mpirun's words where it named a rank or host
    /// ("rank 1 on node vm exited on signal 9 (Killed)").
    public var lost: String
    /// mpirun's exit status.
    public var exitStatus: Int
    /// The step the relaunched job started from: the checkpoint's next step,
    /// or nil when there was no checkpoint yet and it started from the beginning.
    public var resumedFromStep: Int?
    /// The last step (0-based, warm-up counted) the launcher knows had completed.
    public var lastStepSeen: Int?
    /// Completed steps done again: at least `stepsRecomputedMin`, at most `stepsRecomputedMax`.
    public var stepsRecomputedMin: Int
    public var stepsRecomputedMax: Int
    /// Ranks of the relaunched job.
    public var ranks: Int
    /// Hosts of the hostfile left out because they did not answer (empty without one).
    public var hostsLeftOut: [String]

    public init(restart: Int, at: String, lost: String, exitStatus: Int, resumedFromStep: Int?, lastStepSeen: Int?,
                stepsRecomputedMin: Int, stepsRecomputedMax: Int, ranks: Int, hostsLeftOut: [String] = []) {
        self.restart = restart
        self.at = at
        self.lost = lost
        self.exitStatus = exitStatus
        self.resumedFromStep = resumedFromStep
        self.lastStepSeen = lastStepSeen
        self.stepsRecomputedMin = stepsRecomputedMin
        self.stepsRecomputedMax = stepsRecomputedMax
        self.ranks = ranks
        self.hostsLeftOut = hostsLeftOut
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        restart = try c.decode(Int.self, forKey: .restart)
        at = try c.decode(String.self, forKey: .at)
        lost = try c.decode(String.self, forKey: .lost)
        exitStatus = try c.decode(Int.self, forKey: .exitStatus)
        resumedFromStep = try c.decodeIfPresent(Int.self, forKey: .resumedFromStep)
        lastStepSeen = try c.decodeIfPresent(Int.self, forKey: .lastStepSeen)
        stepsRecomputedMin = try c.decode(Int.self, forKey: .stepsRecomputedMin)
        stepsRecomputedMax = try c.decode(Int.self, forKey: .stepsRecomputedMax)
        ranks = try c.decode(Int.self, forKey: .ranks)
        hostsLeftOut = try c.decodeIfPresent([String].self, forKey: .hostsLeftOut) ?? []
    }

    /// Reads a restart log: one JSON object per line, blank lines ignored.
    /// A missing file is a job without restarts. Throws `TrainerError.usage`
    /// naming the file and line of anything else it cannot read.
    public static func readLog(_ path: String) throws -> [Restart] {
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw TrainerError.usage("--restart-log \(path): cannot read the file as UTF-8 text")
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        var restarts: [Restart] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
            where !line.allSatisfy(\.isWhitespace) {
            do {
                restarts.append(try decoder.decode(Restart.self, from: Data(line.utf8)))
            } catch {
                throw TrainerError.usage("--restart-log \(path): line \(n + 1) is not a restart record of scripts/lib/elastic.sh (\(Restart.reason(error)))")
            }
        }
        return restarts
    }

    /// "restart 1 at 2026-12-03T13:02:11Z: rank 1 on node vm exited on signal 9 (Killed) (exit 137);
    /// resumed from step 6 on 2 rank(s); 1 step(s) recomputed".
    public var line: String {
        let from = resumedFromStep.map { "resumed from step \($0)" } ?? "no checkpoint yet: restarted from the beginning"
        let recomputed = stepsRecomputedMin == stepsRecomputedMax
            ? "\(stepsRecomputedMin)" : "\(stepsRecomputedMin) to \(stepsRecomputedMax)"
        var s = "restart \(restart) at \(at): \(lost) (exit \(exitStatus)); \(from) on \(ranks) rank(s); \(recomputed) step(s) recomputed"
        if !hostsLeftOut.isEmpty { s += "; left out \(hostsLeftOut.joined(separator: ", "))" }
        return s
    }

    static func reason(_ error: Error) -> String {
        switch error {
        case let DecodingError.keyNotFound(key, _): return "no \(snakeCase(key.stringValue))"
        case let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context):
            return "\(context.codingPath.map { snakeCase($0.stringValue) }.joined(separator: ".")): \(context.debugDescription)"
        case let DecodingError.dataCorrupted(context): return context.debugDescription
        default: return "\(error)"
        }
    }

    /// "stepsRecomputedMin" → "steps_recomputed_min", the key as the log spells it.
    static func snakeCase(_ key: String) -> String {
        key.reduce(into: "") { s, c in s += c.isUppercase ? "_" + c.lowercased() : String(c) }
    }
}
