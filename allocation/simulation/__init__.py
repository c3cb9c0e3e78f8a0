"""Fleets that already exist, re-registering under new policies: what moves, and what it costs.

``fleet`` reads the devices (seeded registration IDs, or a CSV exported from IoT Hub);
``reregister`` builds each device's DPS request and runs it through the webhook's decision code;
``walk`` takes every device through an ordered list of policies (phases) and counts; ``quota``
turns registrations into time at the DPS quota; ``expected`` computes the share each hub should
get from the candidates each device actually had; ``html`` draws the result. The command line
(``allocation.cli.simulate``) puts them together.
"""
