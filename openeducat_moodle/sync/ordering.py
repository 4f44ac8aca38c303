"""Parents before children, without ever looping on bad data."""


def parents_first(parent_of):
    """Order ids so that each comes after its parent.

    :param dict parent_of: id → parent id (``None`` or falsy for a root)
    :return: ``(levels, problems)``: ``levels`` is a list of lists of ids, each
        level depending only on earlier ones; ``problems`` maps the ids left
        out to the reason (a cycle, or a parent that does not exist or is left
        out itself)
    """
    problems = {}
    depth = {}
    for start in parent_of:
        path, node = [], start
        while node not in depth and node not in problems:
            if node in path:
                cycle = path[path.index(node) :]
                for member in cycle:
                    problems[member] = "cycle in the parent chain: " + " → ".join(
                        str(m) for m in [*cycle, node]
                    )
                break
            path.append(node)
            parent = parent_of.get(node)
            if not parent:
                depth[node] = 0
                break
            if parent not in parent_of:
                problems[node] = f"parent {parent} does not exist or is not synced"
                break
            node = parent
        # Unwind: everything on the path takes its depth from its parent.
        for node in reversed(path):
            if node in depth or node in problems:
                continue
            parent = parent_of.get(node)
            if parent in problems:
                problems[node] = f"parent {parent} cannot be synced"
            else:
                depth[node] = depth[parent] + 1
    levels = []
    for node, level in depth.items():
        while len(levels) <= level:
            levels.append([])
        levels[level].append(node)
    return [sorted(level) for level in levels], problems
