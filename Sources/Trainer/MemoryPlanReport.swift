import Reports
import VGGEngine
import Vocabulary

extension MemoryPlan {
    /// The plan of one rank of a run: its network at the batch per rank, for
    /// the mode's purpose, with momentum in train mode.
    public init(config: TrainConfig) {
        self.init(spec: config.network, batch: config.batchPerRank, purpose: NetworkPurpose(config.mode),
                  optimizerState: config.mode == .train, convAlgorithm: config.convAlgorithm,
                  workspaceBudget: config.workspaceFloats)
    }

    /// The plan as reports record it.
    public var report: MemoryReport {
        func row(_ name: String, _ b: Bytes) -> MemoryReport.Row {
            MemoryReport.Row(name: name, parameters: b.parameters, gradients: b.gradients, optimizerState: b.optimizerState,
                             activations: b.activations, workspace: b.workspace, masks: b.masks)
        }
        return MemoryReport(purpose: purpose.rawValue, batchPerRank: batch,
                            layers: zip(spec.layers, layers).map { row($0.name, $1) },
                            total: row("total", total), activationsWithoutReuse: activationBytesWithoutReuse,
                            inputBytes: inputBytes)
    }
}
