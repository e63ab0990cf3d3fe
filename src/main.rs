fn main() {
    std::process::exit(dashcam::cli::main());
}
