/// What a layer needs to know about the step it is running in: dropout masks
/// and synthetic data are keyed by global sample index, so that N ranks with
/// B samples each compute exactly what one rank computes on N·B.
public struct StepContext: Sendable {
    public var step: Int
    /// Global index of this rank's first sample in the step's global batch.
    public var firstSample: Int
    public var globalBatch: Int
    /// Dropout on (training) or off (inference).
    public var training: Bool

    public init(step: Int, firstSample: Int, globalBatch: Int, training: Bool) {
        self.step = step
        self.firstSample = firstSample
        self.globalBatch = globalBatch
        self.training = training
    }
}

/// Where a layer reads and writes. Activations and gradient buffers are owned
/// by the network and allocated once; the layer only holds pointers.
public struct LayerBuffers {
    public var input: UnsafeMutablePointer<Float>
    public var output: UnsafeMutablePointer<Float>
    /// nil for the first layer: nobody needs the gradient of the images.
    public var inputGrad: UnsafeMutablePointer<Float>?
    public var outputGrad: UnsafeMutablePointer<Float>
}

/// Parameters and their gradients, as pointers into the two arenas.
public struct LayerParameters {
    public var weights: UnsafeMutablePointer<Float>
    public var bias: UnsafeMutablePointer<Float>
    public var weightGrad: UnsafeMutablePointer<Float>
    public var biasGrad: UnsafeMutablePointer<Float>
}

public protocol Layer: AnyObject {
    var spec: LayerSpec { get }
    /// This layer's weights and bias in the arenas (count 0 if it has none).
    var parameterSlice: ArenaSlice { get }
    /// Seconds spent inside sgemm during the last forward or backward call:
    /// the rest of the layer's time is im2col, col2im, bias, ReLU, pooling.
    var gemmSeconds: Double { get }
    func forward(batch: Int, context: StepContext)
    /// Reads `outputGrad` (and may overwrite it), writes the parameter
    /// gradients (overwriting, not accumulating) and `inputGrad`.
    func backward(batch: Int, context: StepContext)
}
