"""Real threads for races: each job on its own thread and database connection, all released at
once (run on PostgreSQL too, where they truly overlap)."""

import threading
from collections.abc import Callable

from django.db import connection


def in_threads(jobs: list[Callable[[], object]]) -> tuple[list[object], list[BaseException]]:
    """Run the jobs at the same moment; returns their results (in job order) and the errors."""
    results: list[object] = [None] * len(jobs)
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(jobs))

    def run(number: int, job: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=30)
            results[number] = job()
        except BaseException as error:  # reported to the test
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(number, job))
               for number, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return results, errors
