import Comm
import Foundation
import Reports
import VGGEngine
import Vocabulary

/// What a trainer hands the report: its timings, gathered to rank 0, and the
/// environment it ran in.
extension DataParallelTrainer {
    /// What this rank measured, with the memory it allocated and the bytes it sent.
    public var timings: RankTimings {
        var t = recorder.timings(peakGflops: peakGflops, skippedSteps: skippedSteps.count)
        t.exchangeBytesPerStep = stepsRun > 0 ? (exchange?.bytesSent ?? 0) / stepsRun : 0
        t.fp32BytesPerStep = stepsRun > 0 ? (exchange?.fp32BytesSent ?? 0) / stepsRun : 0
        let arena = network.parameters.count * 4
        let ownArenas = replica == nil ? arena * (velocity == nil ? 2 : 3) : arena  // host-shared: only the gradients
        t.sharedBytesPerHost = replica.map { $0.memory.sharedFloats * 4 } ?? 0
        t.privateBytes = ownArenas + network.activationBytes + (compressor.map { ($0.state.count + $0.pack.count) * 4 } ?? 0)
        return t
    }

    /// A copy of the records so far (safe to call from the signal queue).
    public func recordsSnapshot() -> [StepTimes] { recorder.snapshot() }

    /// Every rank's timings, on rank 0 (nil elsewhere).
    public func gatherTimings() throws -> [RankTimings]? {
        let mine = timings
        watchdog?.announce(step: config.warmup + config.steps, id: TrainerCollective.gather.rawValue)
        defer { watchdog?.completed() }
        return try group.gather(mine)
    }

    /// The environment as this rank sees it.
    public var environment: RunEnvironment {
        RunEnvironment(hosts: group.hostNames, blasThreads: blasThreads, blasCore: BLAS.coreName, blasConfig: BLAS.config,
                       openblasCoretype: BLASKernel.choiceNote == nil ? ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] : nil,
                       blasKernelChoice: BLASKernel.choiceNote,
                       mpiLibrary: World.libraryVersion, mpiThreadLevel: group.threadLevel.description,
                       commWait: commWaitDescription)
    }
}
