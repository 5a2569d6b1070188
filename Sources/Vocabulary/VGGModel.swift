/// The four VGG configurations of Simonyan & Zisserman (2014), table 1:
/// A (VGG-11), B (VGG-13), D (VGG-16), E (VGG-19). Every convolution is 3×3,
/// stride 1, SAME padding, with bias and ReLU; each of the five blocks ends
/// in 2×2/2 max pooling; then FC-4096, FC-4096, FC-classes.
public enum VGGModel: String, CaseIterable, Codable, Sendable {
    case vgg11, vgg13, vgg16, vgg19

    /// Convolutions per block (the table's columns).
    public var convsPerBlock: [Int] {
        switch self {
        case .vgg11: return [1, 1, 2, 2, 2]
        case .vgg13: return [2, 2, 2, 2, 2]
        case .vgg16: return [2, 2, 3, 3, 3]
        case .vgg19: return [2, 2, 4, 4, 4]
        }
    }

    public static let blockChannels = [64, 128, 256, 512, 512]
    public static let hiddenWidth = 4096
}
