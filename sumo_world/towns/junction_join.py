"""Join junctions that sit inside another junction, at import.

Some CARLA nets split a road a few decimetres inside a junction: a junction
node lies within the area of its neighbour, tied to it by sub-metre edges
(Town03's roundabout in the SUMO net other projects publish, Town06 from
OpenDRIVE). SUMO then sends one path through the outer junction twice, and the
outer junction's internal lanes cross each other: in Town03's roundabout the
ring lane leaving the junction yields to the ring lane entering it, so as soon
as the ring fills every car waits for the one behind it and the ring locks for
good. Joined into one junction, each path has one internal lane and nothing to
wait for but real foes.

``netconvert``'s join drops the connections that ran over the removed inner
edges, so the joined junction gets connections composed from the original
ones (lane to lane, through the inner edges). Junctions with traffic lights
are left as they are: joining would rebuild their signal programs.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Sequence

__all__ = ["nested_clusters", "composed_connections", "join_nested_junctions"]


def _node_polygons(net: Any) -> dict[str, Any]:
    from shapely.geometry import Polygon

    polygons = {}
    for node in net.getNodes():
        shape = [point[:2] for point in node.getShape()]
        if len(shape) >= 3:
            polygon = Polygon(shape)
            polygons[node.getID()] = polygon if polygon.is_valid else polygon.buffer(0)
    return polygons


def nested_clusters(net: Any) -> list[list[str]]:
    """Groups of node ids to join: a node inside the shape of a neighbouring junction of three roads or more.

    ``net`` is a ``sumolib`` net. Groups holding a traffic-light node are left
    out. Each group is sorted; the list is sorted by its first id.
    """
    from shapely.geometry import Point

    polygons = _node_polygons(net)
    parent: dict[str, str] = {}

    def root(node_id: str) -> str:
        while parent.get(node_id, node_id) != node_id:
            node_id = parent[node_id]
        return node_id

    def neighbours(node: Any) -> set[str]:
        return ({edge.getToNode().getID() for edge in node.getOutgoing()}
                | {edge.getFromNode().getID() for edge in node.getIncoming()}) - {node.getID()}

    for node in net.getNodes():
        here = Point(node.getCoord()[:2])
        for other in sorted(neighbours(node)):
            # Only a real junction (three roads or more) can be crossed twice by one path; a road split
            # inside another split (chains of 0.2 m edges) is harmless and stays.
            if (other in polygons and polygons[other].contains(here)
                    and len(neighbours(net.getNode(other))) > 2):
                a, b = root(node.getID()), root(other)
                if a != b:
                    parent[a] = b
    groups: dict[str, set[str]] = {}
    for node_id in list(parent):
        groups.setdefault(root(node_id), {root(node_id)}).add(node_id)
    signalled = {node.getID() for node in net.getNodes() if "traffic_light" in (node.getType() or "")}
    return sorted((sorted(group) for group in groups.values() if not group & signalled), key=lambda g: g[0])


def _vehicle_lane(lane: Any) -> bool:
    return lane.getPermissions() != {"pedestrian"}


def composed_connections(net: Any, cluster: list[str]) -> list[tuple[str, int, str, int]]:
    """``(from_edge, from_lane, to_edge, to_lane)`` across the cluster, through its inner edges.

    Covers every vehicle lane of every edge entering the cluster: what it
    reached before the join, it reaches after.
    """
    members = set(cluster)
    found: set[tuple[str, int, str, int]] = set()
    for node_id in cluster:
        for edge in net.getNode(node_id).getIncoming():
            if edge.getFromNode().getID() in members:
                continue  # an inner edge: reached from the edges that enter the cluster
            for lane in edge.getLanes():
                if not _vehicle_lane(lane):
                    continue
                stack, seen = [lane], set()
                while stack:
                    current = stack.pop()
                    if current.getID() in seen:
                        continue
                    seen.add(current.getID())
                    for connection in current.getOutgoing():
                        target = connection.getToLane()
                        if target.getEdge().getToNode().getID() in members:
                            stack.append(target)  # still inside: follow the inner edge on
                        else:
                            found.add((edge.getID(), lane.getIndex(), target.getEdge().getID(), target.getIndex()))
    return sorted(found)


def join_nested_junctions(net_path: Path, out_path: Path, netconvert: str, run: Any,
                          options: Sequence[str] = ()) -> list[list[str]]:
    """Write ``out_path``: ``net_path`` with its nested junctions joined; return the groups joined.

    Nothing is written when there is nothing to join (an empty list comes
    back). ``run(command, what)`` runs netconvert (the town store's runner,
    which raises on failure); ``options`` go to it too (crossings of the
    joined junctions are guessed anew with ``--crossings.guess``).
    """
    import sumolib

    net = sumolib.net.readNet(str(net_path), withInternal=False, withPedestrianConnections=False)
    clusters = nested_clusters(net)
    if not clusters:
        return []
    nodes = ET.Element("nodes")
    connections = ET.Element("connections")
    for cluster in clusters:
        ET.SubElement(nodes, "join", nodes=" ".join(cluster))
        for from_edge, from_lane, to_edge, to_lane in composed_connections(net, cluster):
            ET.SubElement(connections, "connection", attrib={"from": from_edge, "to": to_edge,
                                                             "fromLane": str(from_lane), "toLane": str(to_lane)})
    node_file, connection_file = out_path.with_suffix(".join.nod.xml"), out_path.with_suffix(".join.con.xml")
    ET.ElementTree(nodes).write(node_file, encoding="utf-8", xml_declaration=True)
    ET.ElementTree(connections).write(connection_file, encoding="utf-8", xml_declaration=True)
    run([netconvert, "--sumo-net-file", str(net_path), "--node-files", str(node_file),
         "--connection-files", str(connection_file), "--offset.disable-normalization",
         *options, "--output-file", str(out_path)], "netconvert (joining nested junctions)")
    return clusters
