import ArgumentParser
import Comm
import Foundation
import Reports
import Trainer
import VGGEngine
import Vocabulary

/// `vgg-dp describe [--json]`: the counts vgg-dp computes for a network
/// (parameters, FLOPs per image, per-layer shapes, gradient bytes), read from
/// `NetworkSpec`. Starts no MPI and allocates no network. The baselines
/// (scripts/baselines/common.py) take their counts from `--json`.
struct Describe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "describe",
        abstract: "The network's parameters, FLOPs per image and layers, as vgg-dp counts them (no MPI).",
        discussion: """
        FLOPs are 2 per multiply-add of the layer shapes; forward + backward adds two GEMMs per layer \
        (weight and input gradient), one for the first convolution (no input gradient). Shapes are \
        height × width × channels per image. Gradient bytes: one gradient per parameter in each type the \
        allreduce can carry (--allreduce-dtype).

        Example: vgg-dp describe --json --model vgg16 --image-size 224
        """)

    @OptionGroup var network: NetworkOptions
    @Flag(help: "Print JSON (snake_case keys) instead of text.")
    var json = false
    /// For scripts/cluster.sh: a link rate in bits per second, as `Units`
    /// reads it (`vgg-dp model --link` uses the same rules).
    @Option(help: .hidden)
    var rate: String?

    func run() throws {
        if let rate {
            let bits = try Units.bitsPerSecond(rate)
            print(bits < 9e18 ? String(Int64(bits.rounded())) : String(bits))
            return
        }
        let spec = network.spec
        do { try spec.validate() } catch let e as EngineError { throw TrainerError.usage(e.description) }
        let d = ModelDescription(spec)
        if json {
            let encoder = JSONEncoder()
            encoder.keyEncodingStrategy = .convertToSnakeCase
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(d), as: UTF8.self))
        } else {
            print(d.text, terminator: "")
        }
    }
}

/// What `vgg-dp describe` prints: `NetworkSpec`'s counts, per network and per layer.
struct ModelDescription: Codable, Equatable {
    struct Layer: Codable, Equatable {
        var name: String
        /// conv, max_pool, linear or dropout.
        var kind: String
        /// Per image: [height, width, channels] for conv and pooling, [features] otherwise.
        var input: [Int]
        var output: [Int]
        var weights: Int
        var biases: Int
        var parameters: Int
        var forwardFlopsPerImage: Int
        /// Weight gradient and input gradient (the first convolution: weight gradient only).
        var backwardFlopsPerImage: Int
    }

    var schema = 1
    var model: String
    var imageSize: Int
    var classes: Int
    var widthDivisor: Int
    var parameters: Int
    var forwardFlopsPerImage: Int
    var forwardBackwardFlopsPerImage: Int
    /// Bytes of one full gradient in each type the allreduce can carry.
    var gradientBytes: [String: Int]
    var layers: [Layer]

    init(_ spec: NetworkSpec) {
        model = spec.model.rawValue
        imageSize = spec.imageSize
        classes = spec.classes
        widthDivisor = spec.widthDivisor
        parameters = spec.parameterCount
        forwardFlopsPerImage = spec.forwardFLOPsPerImage
        forwardBackwardFlopsPerImage = spec.forwardBackwardFLOPsPerImage
        gradientBytes = Dictionary(uniqueKeysWithValues: GradientDType.allCases.map { ($0.rawValue, $0.bytes * spec.parameterCount) })
        layers = spec.layers.enumerated().map { i, s in
            let kind: String, input: [Int], output: [Int]
            switch s {
            case let .conv(_, c, k, h, w): (kind, input, output) = ("conv", [h, w, c], [h, w, k])
            case let .maxPool(_, c, h, w): (kind, input, output) = ("max_pool", [h, w, c], [h / 2, w / 2, c])
            case let .linear(_, n, m, _): (kind, input, output) = ("linear", [n], [m])
            case let .dropout(_, f): (kind, input, output) = ("dropout", [f], [f])
            }
            let forward = 2 * s.forwardMACsPerImage
            return Layer(name: s.name, kind: kind, input: input, output: output, weights: s.weightCount,
                         biases: s.biasCount, parameters: s.parameterCount, forwardFlopsPerImage: forward,
                         backwardFlopsPerImage: forward * (i == 0 ? 1 : 2))
        }
    }

    /// One line per layer with weights, then the totals.
    var text: String {
        func shape(_ s: [Int]) -> String { s.map(String.init).joined(separator: "×") }
        var out = "\(model) at \(imageSize)×\(imageSize), \(classes) classes, width ÷\(widthDivisor)\n"
        for l in layers where l.parameters > 0 {
            out += "  \(l.name.padding(toLength: 8, withPad: " ", startingAt: 0)) \(shape(l.input)) → \(shape(l.output))  "
                + "parameters \(l.parameters)  forward FLOPs/image \(l.forwardFlopsPerImage)  backward \(l.backwardFlopsPerImage)\n"
        }
        out += "parameters \(parameters)\n"
        out += "forward FLOPs/image \(forwardFlopsPerImage)\n"
        out += "forward+backward FLOPs/image \(forwardBackwardFlopsPerImage)\n"
        out += "gradient bytes " + gradientBytes.sorted { $0.key > $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + "\n"
        return out
    }
}
