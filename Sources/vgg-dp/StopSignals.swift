import Comm
import Dispatch
import Foundation
import Reports
import Trainer
import Vocabulary

/// SIGINT and SIGTERM: rank 0 hands a snapshot of its timings to `onStop`
/// (which writes a report marked incomplete), removes the temporary files
/// of atomic writes in progress (`TemporaryFiles`) and exits with 128 +
/// signal; the other ranks follow. Handled on a dispatch queue, not in a signal handler, so
/// the work may allocate and write files.
final class StopSignals {
    let sources: [DispatchSourceSignal]

    init(trainer: DataParallelTrainer, world: World, onStop: @escaping (RankTimings, Int32) -> Void) {
        let queue = DispatchQueue(label: "vgg-dp signals")
        // mpirun stops forwarding output when it is told to stop: a progress
        // line written then must fail quietly, not kill rank 0 by SIGPIPE
        // before it has written its report.
        signal(SIGPIPE, SIG_IGN)
        sources = [SIGINT, SIGTERM].map { sig in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            // The handler holds the trainer weakly: a dispatch queue must not
            // own its last reference, or its communicators would be freed
            // there, perhaps after MPI_Finalize.
            source.setEventHandler { [weak trainer] in
                // The other ranks wait: the first rank to exit makes mpirun
                // kill the rest at once, and rank 0 needs a moment to write.
                if !world.isRoot { sleep(5) }
                if world.isRoot, let trainer {
                    // A checkpoint or report being written now goes first:
                    // mpirun's SIGKILL may come before the partial report is out.
                    TemporaryFiles.removeAll()
                    FileHandle.standardError.write(Data("vgg-dp: stopped by signal \(sig)\n".utf8))
                    let t = RankTimings(steps: trainer.recordsSnapshot(), layerMeans: [], bucketMeans: [],
                                        peakRssBytes: peakResidentBytes(), peakGflops: trainer.peakGflops)
                    onStop(t, sig)
                }
                TemporaryFiles.removeAllAndHold()
                _exit(128 + sig)
            }
            source.resume()
            return source
        }
    }

    func cancel() {
        for s in sources { s.cancel() }
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
}
