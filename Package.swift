// swift-tools-version:5.9
import PackageDescription

// vgg-dp: data-parallel VGG training and benchmarking on OpenMPI + OpenBLAS.
//
//   CMPI, COpenBLAS   system libraries (pkg-config: ompi-c, openblas)
//   Vocabulary        value types every module shares (Foundation only)
//   VGGEngine         the network: layers (BLAS lives here), arenas, data, init
//   Comm              the only module that talks to MPI
//   Trainer           data-parallel training loop, buckets, timing, reports
//   vgg-dp            thin command-line front end
let package = Package(
    name: "vgg-dp",
    products: [
        .executable(name: "vgg-dp", targets: ["vgg-dp"]),
        .library(name: "VGGEngine", targets: ["VGGEngine"]),
        .library(name: "Comm", targets: ["Comm"]),
        .library(name: "Trainer", targets: ["Trainer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .target(name: "Vocabulary"),
        .target(name: "VGGEngine", dependencies: ["Vocabulary", "COpenBLAS"],
                swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]),
        .target(name: "Comm", dependencies: ["Vocabulary", "CMPI"]),
        .target(name: "Trainer", dependencies: ["Vocabulary", "VGGEngine", "Comm"]),
        .executableTarget(name: "vgg-dp", dependencies: [
            "Trainer", "VGGEngine", "Comm", "Vocabulary",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Runs the built vgg-dp under mpirun for the tests that need real ranks.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "VGGEngineTests", dependencies: ["VGGEngine"]),
        .testTarget(name: "CommTests", dependencies: ["Comm", "TestSupport", "vgg-dp"]),
        .testTarget(name: "TrainerTests", dependencies: ["Trainer", "VGGEngine", "Comm", "Vocabulary", "TestSupport", "vgg-dp"]),
    ]
)
