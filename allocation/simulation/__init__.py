"""Fleets that already exist, re-registering under new policies: what moves, and what it costs.

``fleet`` reads the devices (seeded registration IDs, or a CSV exported from IoT Hub);
``reregister`` builds each device's DPS request and gets the webhook's answer; ``walk`` takes
every device through an ordered list of policies (phases) and counts, including the share each
hub is expected to get from the candidates each device had; ``quota`` turns registrations into
time at the DPS quota; ``report`` makes the JSON document and the text, ``html`` the page. The
command line (``allocation.cli.simulate``, ``allocation.cli.simulate_fleet``) puts them together.
"""
