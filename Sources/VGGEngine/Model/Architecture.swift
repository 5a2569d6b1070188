import Vocabulary

/// What a network is made of, before any memory is allocated: enough to count
/// parameters and FLOPs, and to lay out the arenas.
public struct NetworkSpec: Equatable, Codable, Sendable {
    public var model: VGGModel
    public var imageSize: Int
    public var classes: Int
    public var widthDivisor: Int

    public init(model: VGGModel = .vgg16, imageSize: Int = 224, classes: Int = 1000, widthDivisor: Int = 1) {
        self.model = model
        self.imageSize = imageSize
        self.classes = classes
        self.widthDivisor = widthDivisor
    }

    /// Checks the spec and says what is wrong in words a user can act on.
    public func validate() throws {
        guard imageSize >= 32, imageSize % 32 == 0 else {
            throw EngineError.invalid("--image-size must be a positive multiple of 32 (five 2×2 poolings), got \(imageSize)")
        }
        guard classes >= 1 else { throw EngineError.invalid("--classes must be at least 1, got \(classes)") }
        guard widthDivisor >= 1 else { throw EngineError.invalid("--width-divisor must be at least 1, got \(widthDivisor)") }
        for c in VGGModel.blockChannels + [VGGModel.hiddenWidth] where c % widthDivisor != 0 {
            throw EngineError.invalid("--width-divisor \(widthDivisor) does not divide the channel count \(c); use a power of two up to 64")
        }
    }

    /// The layer list in forward order.
    public var layers: [LayerSpec] {
        var out: [LayerSpec] = []
        var size = imageSize
        var channels = 3
        for (block, convs) in model.convsPerBlock.enumerated() {
            let width = VGGModel.blockChannels[block] / widthDivisor
            for i in 0..<convs {
                out.append(.conv(name: "conv\(block + 1)_\(i + 1)", inChannels: channels, outChannels: width, height: size, width: size))
                channels = width
            }
            out.append(.maxPool(name: "pool\(block + 1)", channels: channels, height: size, width: size))
            size /= 2
        }
        let hidden = VGGModel.hiddenWidth / widthDivisor
        let flat = size * size * channels
        out.append(.linear(name: "fc6", inFeatures: flat, outFeatures: hidden, relu: true))
        out.append(.dropout(name: "fc6_drop", features: hidden))
        out.append(.linear(name: "fc7", inFeatures: hidden, outFeatures: hidden, relu: true))
        out.append(.dropout(name: "fc7_drop", features: hidden))
        out.append(.linear(name: "fc8", inFeatures: hidden, outFeatures: classes, relu: false))
        return out
    }

    public var parameterCount: Int { layers.reduce(0) { $0 + $1.parameterCount } }

    /// Multiply-adds of one image's forward pass, summed over the layer shapes.
    public var forwardMACsPerImage: Int { layers.reduce(0) { $0 + $1.forwardMACsPerImage } }

    /// FLOPs (2 per multiply-add) of one image: forward, and forward + backward.
    /// Backward does two GEMMs per layer (weight gradient and input gradient),
    /// except that the first convolution needs no input gradient.
    public var forwardFLOPsPerImage: Int { 2 * forwardMACsPerImage }
    public var forwardBackwardFLOPsPerImage: Int {
        layers.enumerated().reduce(0) { sum, item in
            sum + 2 * item.element.forwardMACsPerImage * (item.offset == 0 ? 2 : 3)
        }
    }
}

public enum LayerSpec: Equatable, Sendable {
    case conv(name: String, inChannels: Int, outChannels: Int, height: Int, width: Int)
    case maxPool(name: String, channels: Int, height: Int, width: Int)
    case linear(name: String, inFeatures: Int, outFeatures: Int, relu: Bool)
    case dropout(name: String, features: Int)

    public var name: String {
        switch self {
        case let .conv(name, _, _, _, _), let .maxPool(name, _, _, _),
             let .linear(name, _, _, _), let .dropout(name, _):
            return name
        }
    }

    public var weightCount: Int {
        switch self {
        case let .conv(_, c, k, _, _): return 9 * c * k
        case let .linear(_, i, o, _): return i * o
        default: return 0
        }
    }

    public var biasCount: Int {
        switch self {
        case let .conv(_, _, k, _, _): return k
        case let .linear(_, _, o, _): return o
        default: return 0
        }
    }

    public var parameterCount: Int { weightCount + biasCount }

    public var forwardMACsPerImage: Int {
        switch self {
        case let .conv(_, c, k, h, w): return h * w * 9 * c * k
        case let .linear(_, i, o, _): return i * o
        default: return 0
        }
    }

    /// Elements of one image's output activation.
    public var outputElementsPerImage: Int {
        switch self {
        case let .conv(_, _, k, h, w): return h * w * k
        case let .maxPool(_, c, h, w): return (h / 2) * (w / 2) * c
        case let .linear(_, _, o, _): return o
        case let .dropout(_, f): return f
        }
    }

    public var inputElementsPerImage: Int {
        switch self {
        case let .conv(_, c, _, h, w): return h * w * c
        case let .maxPool(_, c, h, w): return h * w * c
        case let .linear(_, i, _, _): return i
        case let .dropout(_, f): return f
        }
    }
}

/// Errors from the engine, with a message a user can act on.
public enum EngineError: Error, CustomStringConvertible, Equatable {
    case invalid(String)
    public var description: String {
        switch self { case let .invalid(m): return m }
    }
}
