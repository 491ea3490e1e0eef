"""One colour per gear, shared by the tint of reply tokens, the gear mix bar and the sparkline."""

from gearterm.kernels.gear import Gear

GEAR_COLORS = {
    Gear.LOW: "#5fd787",  # green: cheapest weights
    Gear.MID: "#ffd75f",  # amber
    Gear.HIGH: "#ff875f",  # orange-red: full precision, most bytes read
}
