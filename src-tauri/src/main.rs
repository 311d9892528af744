// No console window on Windows release builds (the console is a GUI app).
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    vigie_console::run();
}
