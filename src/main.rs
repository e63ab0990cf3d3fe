fn main() {
    std::process::exit(dashcam::main());
}
