import Comm
import Foundation
import VGGEngine
import Vocabulary

/// Saving and resuming training state across the group: rank 0 alone
/// touches the file, and every rank gets its verdict, so a failed write or a
/// bad checkpoint stops every rank with the same message instead of leaving
/// the others waiting in the next collective. With one replica per host,
/// only one rank per host receives the state, into the host's shared arenas.
struct Checkpointing {
    let group: World
    let config: TrainConfig
    let watchdog: Watchdog?
    let replica: HostReplica?
    /// The ranks that hold a replica of their own: all, or one per host.
    let holders: World?

    init(group: World, config: TrainConfig, watchdog: Watchdog?, replica: HostReplica?) throws {
        self.group = group
        self.config = config
        self.watchdog = watchdog
        self.replica = replica
        if let replica {
            let leaders = try group.split(color: replica.localRank == 0 ? 0 : 1, key: group.rank)
            holders = replica.localRank == 0 ? leaders : nil
        } else {
            holders = group
        }
    }

    /// What rank 0 found: the next step, or the message that stops every rank.
    private struct Verdict: Codable {
        var nextStep = 0
        var error: String?
        var usage = false
    }

    /// Rank 0 writes the checkpoint into `folder`; every rank learns whether it worked.
    func save(to folder: String, nextStep: Int, parameters: FloatArena, momentum: FloatArena) throws {
        var verdict = Verdict(nextStep: nextStep)
        if group.isRoot {
            do {
                let header = Checkpoint.header(config: config, ranks: group.size, nextStep: nextStep, parameters: parameters)
                try Checkpoint.write(to: folder, header: header, sections: [parameters, momentum])
            } catch {
                verdict.error = "\(error)"
            }
        }
        try share(&verdict, step: nextStep - 1)
    }

    /// Rank 0 reads and verifies the checkpoint in `folder`, then broadcasts
    /// parameters, momentum and the next step to every rank.
    func resume(from folder: String, parameters: FloatArena, momentum: FloatArena) throws -> Int {
        var verdict = Verdict()
        if group.isRoot {
            do {
                let header = try Checkpoint.read(from: folder, sections: [parameters, momentum])
                try Checkpoint.check(header, against: config, ranks: group.size)
                verdict.nextStep = header.nextStep
            } catch {
                verdict.error = "\(error)"
                verdict.usage = true
            }
        }
        try share(&verdict, step: 0)
        if group.size > 1 {
            try announced(step: 0) {
                if let holders, holders.size > 1 {
                    try holders.broadcast(parameters.base, count: parameters.count)
                    try holders.broadcast(momentum.base, count: momentum.count)
                }
                try replica?.memory.synchronize()
            }
        }
        return verdict.nextStep
    }

    private func share(_ verdict: inout Verdict, step: Int) throws {
        if group.size > 1 {
            let v = verdict
            verdict = try announced(step: step) { try group.broadcast(group.isRoot ? v : nil) }
        }
        if let message = verdict.error { throw verdict.usage ? TrainerError.usage(message) : TrainerError.failed(message) }
    }

    private func announced<T>(step: Int, _ body: () throws -> T) throws -> T {
        watchdog?.announce(step: step, id: TrainerCollective.checkpoint.rawValue)
        defer { watchdog?.completed() }
        return try body()
    }
}

/// Ids of the collectives other than bucket allreduces, for the watchdog.
enum TrainerCollective: Int {
    case replicaCheck = 10_000, checkpoint, gather, hostMeeting, acrossHosts
    static func describe(_ id: Int) -> String {
        switch TrainerCollective(rawValue: id) {
        case .replicaCheck: return "the replica checksum comparison"
        case .checkpoint: return "the checkpoint broadcast"
        case .gather: return "the gather of timings at rank 0"
        case .hostMeeting: return "the host's meeting after backward (host-shared exchange)"
        case .acrossHosts: return "the allreduce of gradient slices across hosts"
        case nil: return "collective \(id)"
        }
    }
}
