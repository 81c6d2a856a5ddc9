def choose_action(temperature_c, rate_c_per_min):
    # A first guess: mostly the current temperature, a little of the trend.
    ahead = temperature_c + 0.5 * rate_c_per_min
    if ahead < 18.0:
        return "heat"
    if ahead > 25.0:
        return "cool"
    return "off"
