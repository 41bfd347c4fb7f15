"""What the tests share, as a library: the loopback stack (harness), API Gateway on loopback
(local_gateway), in-memory doubles of the domain's ports (doubles), the seats-and-usage configuration
(usage) and the reliability suite's event helpers (reliability). Test modules import from here, never
from one another or from a conftest."""
