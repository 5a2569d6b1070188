import ArgumentParser
import Foundation
import Reports
import Trainer
import VGGEngine
import Vocabulary

/// `vgg-dp memory`: the memory plan of one rank (`MemoryPlan`) for a model,
/// image size, batch and mode, per layer and in total, without allocating a
/// network or starting MPI; `--fit` prints the largest batch whose plan fits
/// a size.
struct MemoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memory",
        abstract: "The bytes one rank allocates, per layer and in total, for a model, batch and mode (no MPI, nothing run).",
        discussion: """
        Parameters, gradients, optimizer state (SGD momentum, train mode), activations (one arena, buffers \
        reused once nothing later reads them; plus the images), convolution workspace and masks (max-pool \
        argmax, dropout). Peak RSS adds the process itself (libraries, MPI, OpenBLAS buffers): leave room \
        for it (see docs/MEMORY.md). With --exchange host-shared, parameters and momentum are held once \
        per host instead of per rank.

        Examples: vgg-dp memory --batch-size 32 --mode forward-backward
                  vgg-dp memory --mode train --fit 16GiB
        """)

    @OptionGroup var network: NetworkOptions
    @Option(help: "Samples per rank per step.")
    var batchSize = 16
    @Option(help: "train, forward or forward-backward.")
    var mode: Mode = .train
    @Option(help: "Convolution lowering, as for train (it sizes the workspace).")
    var conv: ConvAlgorithm = .auto
    @Option(help: "Print the largest batch per rank whose plan fits this size (bytes, or e.g. 3072MiB, 16GiB).")
    var fit: String?
    @Flag(help: "Print JSON (snake_case keys) instead of text.")
    var json = false

    func run() throws {
        let spec = network.spec
        do { try spec.validate() } catch let e as EngineError { throw TrainerError.usage(e.description) }
        guard batchSize >= 1 else { throw TrainerError.usage("--batch-size must be at least 1, got \(batchSize)") }
        var config = TrainConfig()
        config.network = spec
        config.batchPerRank = batchSize
        config.mode = mode
        config.convAlgorithm = conv

        if let fit {
            let bytes = try Units.bytes(fit)
            let largest = MemoryPlan.largestBatch(fitting: bytes, spec: spec, purpose: NetworkPurpose(mode),
                                                  optimizerState: mode == .train, convAlgorithm: conv,
                                                  workspaceBudget: config.workspaceFloats)
            guard let largest else {
                throw TrainerError.usage("not even batch 1 fits in \(fit): its plan needs "
                                         + "\(MemoryPlan(config: withBatch(config, 1)).total.sum) bytes")
            }
            config.batchPerRank = largest
            if json {
                try printJSON(FitAnswer(fitBytes: bytes, batchPerRank: largest, memory: MemoryPlan(config: config).report))
            } else {
                let r = MemoryPlan(config: config).report
                print("largest batch per rank that fits \(fit) (\(bytes) bytes): \(largest)")
                print(r.summaryLine)
            }
            return
        }
        let r = MemoryPlan(config: config).report
        if json {
            try printJSON(r)
        } else {
            print("\(spec.model.rawValue) at \(spec.imageSize)×\(spec.imageSize), \(mode.rawValue), batch \(batchSize) per rank, conv \(conv.rawValue)")
            print(r.table)
            print("activations without reuse \(Text.fixed(Double(r.activationsWithoutReuse) / 1_048_576, 1)) MiB; "
                  + "images and labels \(Text.fixed(Double(r.inputBytes) / 1_048_576, 1)) MiB (in the total's activations)")
            print(r.summaryLine)
        }
    }

    private func withBatch(_ c: TrainConfig, _ b: Int) -> TrainConfig {
        var c = c
        c.batchPerRank = b
        return c
    }

    private func printJSON<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        print(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    /// `--fit --json`: the size asked, the batch, and that batch's plan.
    struct FitAnswer: Encodable {
        var fitBytes: Int
        var batchPerRank: Int
        var memory: MemoryReport
    }
}
