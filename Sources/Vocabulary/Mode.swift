/// What a run does, as the notebook's two benchmarks plus real training.
public enum Mode: String, Codable, CaseIterable, Sendable {
    /// Inference pass, dropout off (keep_prob 1.0).
    case forward
    /// Dropout on (keep 0.5), l2_loss(fc8), gradients of every parameter, no update.
    case forwardBackward = "forward-backward"
    /// Cross-entropy on synthetic labels, backward, allreduce, SGD update.
    case train

    /// The notebook's name for the closing line.
    public var title: String {
        switch self {
        case .forward: return "Forward"
        case .forwardBackward: return "Forward-backward"
        case .train: return "Train"
        }
    }

    public var hasBackward: Bool { self != .forward }
}
