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
    /// PowerSGD's state: the Q's (the same on every rank) and each rank's own
    /// error-feedback memory, which rank 0 receives and writes after its own
    /// (and sends back on resume), piece by piece. With host-shared each
    /// rank compresses its own slice: its whole state travels (`relayed`).
    let compressor: PowerSGD?
    /// Per rank, the floats of its state that rank 0 writes after its own.
    let relayed: [Int]
    /// The hosts of a host-shared run with compression (nil otherwise).
    let sharedHosts: Int?

    init(group: World, config: TrainConfig, watchdog: Watchdog?, replica: HostReplica?, compressor: PowerSGD? = nil) throws {
        self.group = group
        self.compressor = compressor
        self.config = config
        self.watchdog = watchdog
        self.replica = replica
        if let replica {
            let leaders = try group.split(color: replica.localRank == 0 ? 0 : 1, key: group.rank)
            holders = replica.localRank == 0 ? leaders : nil
        } else {
            holders = group
        }
        if let c = compressor, let replica {
            sharedHosts = group.size / replica.host.size
            relayed = try group.allgather(UInt64(c.state.count)).map { Int($0) }
        } else {
            sharedHosts = nil
            relayed = Array(repeating: compressor?.memoryCount ?? 0, count: group.size)
        }
    }

    /// Frees the leaders' communicator, when this made one (host-shared).
    func free() { if replica != nil { holders?.free() } }

    /// What rank 0 found: the next step, or the message that stops every rank.
    private struct Verdict: Codable {
        var nextStep = 0
        var error: String?
        var usage = false
    }

    /// Rank 0 writes the checkpoint into `folder`; every rank learns whether it worked.
    func save(to folder: String, nextStep: Int, parameters: FloatArena, momentum: FloatArena) throws {
        var verdict = Verdict(nextStep: nextStep)
        let piece = Checkpoint.pieceBytes / 4
        if group.isRoot {
            var received = Array(repeating: 0, count: group.size)
            do {
                let header = Checkpoint.header(config: config, ranks: group.size, nextStep: nextStep, parameters: parameters,
                                               sharedHosts: sharedHosts)
                let relays = compressor.map { _ in
                    (1..<max(group.size, 1)).map { r in
                        Checkpoint.Relay(count: relayed[r]) { buffer, _, n in
                            try group.receive(buffer, count: n, from: r)
                            received[r] += n
                        }
                    }
                } ?? []
                try Checkpoint.write(to: folder, header: header,
                                     sections: [parameters, momentum] + (compressor.map { [$0.state] } ?? []), relays: relays)
            } catch {
                verdict.error = "\(error)"
            }
            // A failed write still takes every piece the other ranks send.
            if compressor != nil, verdict.error != nil {
                let sink = UnsafeMutablePointer<Float>.allocate(capacity: piece)
                defer { sink.deallocate() }
                for r in 1..<max(group.size, 1) {
                    while received[r] < relayed[r] {
                        let n = min(piece, relayed[r] - received[r])
                        try group.receive(sink, count: n, from: r)
                        received[r] += n
                    }
                }
            }
        } else if let c = compressor {
            try announced(step: nextStep - 1) {
                var offset = 0
                let count = relayed[group.rank]
                while offset < count {
                    let n = min(piece, count - offset)
                    try group.send(c.state.base + offset, count: n, to: 0)
                    offset += n
                }
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
                let others = compressor == nil ? 0 : relayed.dropFirst().reduce(0, +)
                let header = try Checkpoint.read(from: folder, sections: [parameters, momentum] + (compressor.map { [$0.state] } ?? []),
                                                 relayFloats: others) {
                    try Checkpoint.check($0, against: config, ranks: group.size, sharedHosts: sharedHosts)
                }
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
                if let c = compressor {
                    // The Q's are the same on every rank unless each rank compresses its own slice.
                    if sharedHosts == nil { try group.broadcast(c.state.base + c.memoryCount, count: c.state.count - c.memoryCount) }
                    try relayMemory(c, folder: folder, before: parameters.count + momentum.count + c.state.count)
                }
            }
        }
        return verdict.nextStep
    }

    /// Rank 0 reads each other rank's relayed state (its error-feedback
    /// memory, or with host-shared its whole state) from the file (it
    /// follows rank 0's state, `before` floats in) and sends it on.
    private func relayMemory(_ c: PowerSGD, folder: String, before: Int) throws {
        if group.isRoot {
            var offset = before
            for r in 1..<group.size {
                try Checkpoint.readFloats(from: folder, offset: offset, count: relayed[r]) { buffer, n in
                    try group.send(buffer, count: n, to: r)
                }
                offset += relayed[r]
            }
        } else {
            let piece = Checkpoint.pieceBytes / 4
            var offset = 0
            let count = relayed[group.rank]
            while offset < count {
                let n = min(piece, count - offset)
                try group.receive(c.state.base + offset, count: n, from: 0)
                offset += n
            }
        }
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
