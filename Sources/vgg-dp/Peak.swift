import ArgumentParser
import Reports
import Trainer
import VGGEngine
import Vocabulary

struct Peak: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure sgemm GFLOP/s with the given thread count: the machine's limit for this engine.")

    @Option(help: "BLAS threads.") var threads = 1
    @Option(help: "Matrix side.") var size = 2048
    @Option(help: "Timed repetitions (best is reported).") var repeats = 5

    func run() throws {
        guard threads >= 1, size >= 1, repeats >= 1 else {
            throw TrainerError.usage("--threads, --size and --repeats must be at least 1")
        }
        BLAS.setThreads(threads)
        let r = BLAS.peakGFLOPS(n: size, repeats: repeats)
        let times = r.seconds.map { Text.fixed($0 * 1000, 1) }.joined(separator: " ")
        printOut("peak: sgemm \(size)×\(size)×\(size), \(threads) thread(s), OpenBLAS \(BLAS.coreName)\(BLASKernel.choiceNote == nil ? "" : " (chosen by vgg-dp)"): \(Text.fixed(r.gflops, 1)) GFLOP/s (best of \(repeats); ms: \(times))")
    }
}
