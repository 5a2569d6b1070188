/// How gradients are compressed before they travel (`--compression`).
public enum CompressionChoice: String, CaseIterable, Codable, Sendable {
    case none, powersgd
}

/// PowerSGD's settings (`--powersgd-rank`, `--powersgd-min-size`): each
/// weight gradient of at least `minSize` elements whose rank-`rank` factors
/// are smaller than the matrix travels as those factors; biases and smaller
/// layers travel whole.
public struct PowerSGDSettings: Codable, Equatable, Sendable {
    public static let defaultRank = 4
    public static let defaultMinSize = 65_536

    public var rank: Int
    /// Smallest weight gradient, in elements, that is compressed.
    public var minSize: Int

    public init(rank: Int = PowerSGDSettings.defaultRank, minSize: Int = PowerSGDSettings.defaultMinSize) {
        self.rank = rank
        self.minSize = minSize
    }

    /// Whether a rows×cols weight gradient of this size is compressed: big
    /// enough, and its factors (rows + cols)·rank smaller than rows·cols.
    public func compresses(rows: Int, cols: Int) -> Bool {
        rows * cols >= minSize && (rows + cols) * rank < rows * cols
    }

    /// "powersgd rank 4 min 65536": the checkpoint header's and the report's words for it.
    public var description: String { "powersgd rank \(rank) min \(minSize)" }
}
