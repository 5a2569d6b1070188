import Foundation

/// The memory plan of one rank as a report records it and `vgg-dp memory`
/// prints it: per layer and in total, the bytes allocated for parameters,
/// gradients, optimizer state (SGD momentum), activations, convolution
/// workspace and masks. Computed from the model, batch, mode and
/// convolution choices, not measured (peak RSS is the measurement).
public struct MemoryReport: Codable, Equatable, Sendable {
    /// Bytes by kind, for one layer or the total.
    public struct Row: Codable, Equatable, Sendable {
        public var name: String
        public var parameters: Int
        public var gradients: Int
        public var optimizerState: Int
        /// A layer: its output and output-gradient buffers before reuse.
        /// The total: the activation arena after reuse, plus images and labels.
        public var activations: Int
        /// A layer: what it asks of the shared workspace. The total: the workspace.
        public var workspace: Int
        /// Max-pool argmax bytes and dropout masks.
        public var masks: Int
        public var total: Int

        public init(name: String, parameters: Int, gradients: Int, optimizerState: Int, activations: Int,
                    workspace: Int, masks: Int) {
            self.name = name
            self.parameters = parameters
            self.gradients = gradients
            self.optimizerState = optimizerState
            self.activations = activations
            self.workspace = workspace
            self.masks = masks
            total = parameters + gradients + optimizerState + activations + workspace + masks
        }
    }

    /// "training" (keeps what backward reads) or "inference".
    public var purpose: String
    public var batchPerRank: Int
    public var layers: [Row]
    public var total: Row
    /// The layers' activation buffers summed, as if none were reused.
    public var activationsWithoutReuse: Int
    /// Images and labels of one batch (part of the total's activations).
    public var inputBytes: Int

    public init(purpose: String, batchPerRank: Int, layers: [Row], total: Row, activationsWithoutReuse: Int,
                inputBytes: Int) {
        self.purpose = purpose
        self.batchPerRank = batchPerRank
        self.layers = layers
        self.total = total
        self.activationsWithoutReuse = activationsWithoutReuse
        self.inputBytes = inputBytes
    }

    static func mib(_ bytes: Int) -> String { Text.fixed(Double(bytes) / 1_048_576, 1) }

    /// One line: the totals in MiB.
    public var summaryLine: String {
        "memory per rank (plan, \(purpose)): parameters \(Self.mib(total.parameters)) + gradients \(Self.mib(total.gradients))"
            + " + optimizer \(Self.mib(total.optimizerState)) + activations \(Self.mib(total.activations))"
            + " + workspace \(Self.mib(total.workspace)) + masks \(Self.mib(total.masks)) = \(Self.mib(total.total)) MiB"
    }

    /// One row per layer and the total, in MiB.
    public var table: String {
        let rows = (layers + [total]).map { r in
            [r.name, Self.mib(r.parameters), Self.mib(r.gradients), Self.mib(r.optimizerState), Self.mib(r.activations),
             Self.mib(r.workspace), Self.mib(r.masks), Self.mib(r.total)]
        }
        return Text.table(["layer", "params_MiB", "grads_MiB", "optimizer_MiB", "activations_MiB", "workspace_MiB",
                           "masks_MiB", "total_MiB"], rows)
    }
}
